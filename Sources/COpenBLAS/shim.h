// OpenBLAS's CBLAS interface plus the two thread-control calls it declares.
#include <cblas.h>

// glibc's allocator tuning (mallopt), used to keep freed activation buffers for reuse.
#include <malloc.h>

// Exported by OpenBLAS but not declared in cblas.h: the OPENBLAS_THREAD_TIMEOUT it read at load.
int openblas_thread_timeout(void);
