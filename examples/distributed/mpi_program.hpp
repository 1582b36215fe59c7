// main() of the MPI example programs: MPI_Init, the program, MPI_Finalize. An exception aborts
// the whole job with its message (a rank that stopped alone would leave the others waiting).
#pragma once
#include <mpi.h>

#include <cstdio>
#include <exception>

namespace distributed {

inline int run_mpi_program(int argc, char** argv, const char* name, int (*program)(int, char**)) {
  MPI_Init(&argc, &argv);
  int code = 1;
  try {
    code = program(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Finalize();
  return code;
}

}  // namespace distributed
