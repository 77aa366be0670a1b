/// Neural-network core on BLAS. See the files of this module.
