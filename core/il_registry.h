/* core/il_registry.h: lookup by name in a table of ops structs. Every ops
 * struct (il_solver_ops, il_backward_ops, ...) starts with `const char *name`,
 * so a pointer to the struct is also a pointer to its name (C11 6.7.2.1). */
#ifndef IL_REGISTRY_H
#define IL_REGISTRY_H

#include <stddef.h>

/* The entry whose name equals `name`, or NULL. */
const void *il_registry_find(const void *const *entries, size_t n, const char *name);
/* "a, b, c" into buf (for error messages listing the valid choices). */
const char *il_registry_names(const void *const *entries, size_t n, char *buf, size_t cap);

#endif
