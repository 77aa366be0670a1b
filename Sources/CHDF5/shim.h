#include <hdf5.h>

// HDF5's predefined types and default property lists are macros that expand to global ids behind
// H5open(); Swift cannot import them, so they are reached through these functions.
static inline hid_t nic_h5_default(void) { return H5P_DEFAULT; }
static inline hid_t nic_h5_all(void) { return H5S_ALL; }
static inline unsigned nic_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline hid_t nic_h5t_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t nic_h5t_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t nic_h5t_native_int64(void) { return H5T_NATIVE_INT64; }
// Silences the error stack HDF5 prints to stderr by default: nic reports its own errors.
static inline void nic_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
