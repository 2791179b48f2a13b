#ifndef HERALD_CFUZZDRIVER_H
#define HERALD_CFUZZDRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry for programs that keep their own main (SwiftPM names an executable's
/// entry point itself). Resolved from the fuzzer runtime, so only referenced in -DFUZZING builds.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
