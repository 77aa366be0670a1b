import NICCLI

// Before anything else: OpenBLAS picks its kernel when it loads, so a wrong pick needs a re-exec;
// then its threads are set once for the run (nic's workers do the parallel work).
NICProcess.start()
NIC.main()
