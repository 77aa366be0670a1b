import NICCLI

NIC.main()
