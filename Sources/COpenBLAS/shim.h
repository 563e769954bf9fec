// OpenBLAS's CBLAS interface plus the two thread-control calls it declares.
#include <cblas.h>
