// generate_cmd.h: `hlab generate` (generate_cmd.c).
#pragma once
// Parses argv (argv[1] is "generate"), generates, returns the exit status.
int generate_main(int argc, char **argv);
