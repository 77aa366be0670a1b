import NICCLI

// Before anything else: OpenBLAS picks its kernel when it loads, so a wrong pick needs a re-exec.
NICProcess.reexecWithFastBLASIfNeeded()
NIC.main()
