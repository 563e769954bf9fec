/*
 * Raw MPI_Allreduce bandwidth: the baseline that `picotron comm-bench` is compared with.
 *
 * Same sizes (4 KB to 64 MB, x4), same iteration counts, same timing method as comm-bench:
 * per size, a fresh zeroed buffer, 3 warm-up calls, then 5 repetitions of (MPI_Barrier, `iters` back-to-back
 * in-place float sum all-reduces timed with CLOCK_MONOTONIC); the time per call is the best
 * repetition's mean, maximum over ranks. Same thread level as the Swift runtime
 * (MPI_THREAD_MULTIPLE).
 *
 * Build and run:
 *   mpicc -O2 -o allreduce_raw scripts/allreduce_raw.c
 *   OMPI_MCA_pml=ob1 mpirun -np 2 ./allreduce_raw [reps] [single]
 *   OMPI_MCA_pml=ob1 mpirun -np 2 picotron comm-bench [--reps reps]
 * `reps` (default 5) matches comm-bench's --reps; more reps see through a busy machine.
 * "single" initialises with plain MPI_Init, to measure what the thread level costs.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int provided = 0, reps = 5, single = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "single") == 0) single = 1;
        else if (atoi(argv[i]) > 0) reps = atoi(argv[i]);
    }
    if (single) {
        MPI_Init(&argc, &argv);
    } else {
        MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    }
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    const long min_bytes = 4096, max_bytes = 64L << 20;
    if (rank == 0) {
        printf("# raw MPI_Allreduce (sum, in place), %d ranks, best of %d reps\n", size, reps);
        printf("%12s%12s%12s%12s%12s\n", "bytes", "iters", "us/call", "algbw GB/s", "busbw GB/s");
    }
    for (long bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
        int count = (int)(bytes / 4);
        /* A fresh zeroed buffer per size, as comm-bench does. */
        float *buf = calloc((size_t)count, sizeof(float));
        long it = (256L << 20) / bytes;
        int iters = (int)(it < 5 ? 5 : (it > 2000 ? 2000 : it));
        for (int i = 0; i < 3; i++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = now();
            for (int i = 0; i < iters; i++) MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double t = (now() - t0) / iters;
            if (t < best) best = t;
        }
        double slowest;
        MPI_Allreduce(&best, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (rank == 0) {
            double algbw = (double)bytes / slowest / 1e9;
            printf("%12ld%12d%12.1f%12.2f%12.2f\n", bytes, iters, slowest * 1e6, algbw,
                   algbw * 2.0 * (size - 1) / size);
            fflush(stdout);
        }
        free(buf);
    }
    MPI_Finalize();
    return 0;
}
