/* bench/mnist_idx.h: reader for MNIST-style idx files (raw or gzip).
 * Validates magic, element type, rank, dimensions, the byte count against the
 * header, and that image and label counts match. Only regular files are read: a
 * FIFO, socket, device or directory is refused before a blocking open. Precision independent:
 * pixels stay uint8 and are scaled to [0,1] when a batch is gathered. */
#ifndef IL_MNIST_IDX_H
#define IL_MNIST_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "il_status.h"

typedef struct il_idx_images {
  uint8_t *pixels; /* (count, rows*cols) row-major */
  size_t count, rows, cols;
} il_idx_images;

typedef struct il_idx_labels {
  uint8_t *labels; /* (count) values 0..9 */
  size_t count;
} il_idx_labels;

typedef struct il_mnist_split {
  il_idx_images images;
  il_idx_labels labels;
} il_mnist_split;

/* Read one idx3-ubyte image file (path may end in .gz; gzip is detected by magic bytes). */
il_status il_idx_read_images(const char *path, il_idx_images *out);
/* Read one idx1-ubyte label file; labels > 9 are rejected. */
il_status il_idx_read_labels(const char *path, il_idx_labels *out);
void il_idx_images_free(il_idx_images *im);
void il_idx_labels_free(il_idx_labels *lb);

/* Load "<dir>/<prefix>-images-idx3-ubyte" and "<dir>/<prefix>-labels-idx1-ubyte"
 * (prefix "train" or "t10k"), trying the raw name then "<name>.gz", and check counts match. */
il_status il_mnist_load_split(const char *dir, const char *prefix, il_mnist_split *out);
void il_mnist_split_free(il_mnist_split *s);

#endif
