import Foundation
import NICCLI
import ToyNodes

// `nic` with the toy node types, plus the zarr interoperability fixtures that .ci/run checks with zarr-python.
let arguments = CommandLine.arguments
if arguments.count == 3 && (arguments[1] == "zarr-fixtures" || arguments[1] == "zarr-check") {
    do {
        let dir = URL(fileURLWithPath: arguments[2])
        if arguments[1] == "zarr-fixtures" { try ZarrInterop.writeFixtures(to: dir) } else { try ZarrInterop.checkPythonWritten(at: dir) }
        print("\(arguments[1]): ok")
    } catch {
        FileHandle.standardError.write(Data("\(arguments[1]): \(error)\n".utf8))
        exit(1)
    }
} else {
    NICEnvironment.registry = ToyNodes.registry
    NIC.main()
}
