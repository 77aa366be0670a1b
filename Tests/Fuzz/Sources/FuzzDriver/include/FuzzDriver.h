#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (compiler-rt), called from each harness's entry point: SwiftPM names an
// executable's entry `<module>_main` and points `main` at it, so libFuzzer's own `main` is not linked.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
