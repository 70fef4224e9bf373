/* distributed/il_scalapack.h: the BLACS, PBLAS and ScaLAPACK prototypes we
 * call. Debian's libscalapack-openmpi-dev ships no C header, so they are
 * declared here, once, from the Fortran interfaces of ScaLAPACK 2.2 (every
 * argument by reference, column-major local storage, 1-based global indices
 * IA/JA). A descriptor is the 9 ints DESCINIT fills: DTYPE, CTXT, M, N, MB, NB,
 * RSRC, CSRC, LLD. */
#ifndef IL_SCALAPACK_H
#define IL_SCALAPACK_H

#include <mpi.h>

#define IL_DLEN 9 /* descriptor length */

/* ---- BLACS (C interface) ---- */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);
void Cblacs_pinfo(int *mypnum, int *nprocs);

/* ---- tools ---- */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);

/* ---- PBLAS ---- */
void psgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const float *alpha,
             const float *a, const int *ia, const int *ja, const int *desca, const float *b, const int *ib,
             const int *jb, const int *descb, const float *beta, float *c, const int *ic, const int *jc,
             const int *descc);
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);

/* ---- ScaLAPACK ---- */
void psgetrf_(const int *m, const int *n, float *a, const int *ia, const int *ja, const int *desca, int *ipiv,
              int *info);
void pdgetrf_(const int *m, const int *n, double *a, const int *ia, const int *ja, const int *desca, int *ipiv,
              int *info);
void psgetrs_(const char *trans, const int *n, const int *nrhs, const float *a, const int *ia, const int *ja,
              const int *desca, const int *ipiv, float *b, const int *ib, const int *jb, const int *descb,
              int *info);
void pdgetrs_(const char *trans, const int *n, const int *nrhs, const double *a, const int *ia, const int *ja,
              const int *desca, const int *ipiv, double *b, const int *ib, const int *jb, const int *descb,
              int *info);
void psgecon_(const char *norm, const int *n, const float *a, const int *ia, const int *ja, const int *desca,
              const float *anorm, float *rcond, float *work, const int *lwork, int *iwork, const int *liwork,
              int *info);
void pdgecon_(const char *norm, const int *n, const double *a, const int *ia, const int *ja, const int *desca,
              const double *anorm, double *rcond, double *work, const int *lwork, int *iwork, const int *liwork,
              int *info);

#endif
