import NICBasics
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import COpenBLAS

/// Process-wide set-up of the numerical stack, done once before any computation.
public enum Compute {
    /// The instruction set nic's own loops were compiled for (Package.swift picks x86-64-v3 when the
    /// building machine has AVX2 and FMA; NIC_PORTABLE=1 keeps the baseline).
    public static var codegen: String {
        #if NIC_X86_64_V3
        return "x86-64-v3 (AVX2, FMA)"
        #else
        return "baseline (no AVX2/FMA codegen)"
        #endif
    }

    /// How many pieces the neural core cuts parallel work into (batch shares, reduction ranges): the
    /// machine's core count, whatever budget a call has. A budget of fewer threads runs several
    /// pieces per worker, and partial results are combined in piece order, so a network computes the
    /// same bits with one thread or all of them, alone or beside another node.
    public static let pieces = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Call once at start-up (the CLI's `main` does, after the BLAS re-exec). Idempotent, and a
    /// `Network` calls it too, so a library user who forgot still gets it before the first GEMM.
    public static func configureProcess() { _ = configured }

    private static let configured: Void = {
        // All parallelism comes from nic's workers, sized by each call's ComputeContext. OpenBLAS
        // threads on top would oversubscribe the cores, and its threaded GEMMs serialise on one lock
        // when two workers call at once; its thread count is process-wide, so it is set here, once.
        openblas_set_num_threads(1)
        keepLargeAllocations()
    }()

    /// glibc serves every allocation above 32 MB with a fresh mmap and returns it on free, so each
    /// training step page-faults (and zero-fills in the kernel) every large activation again: most of
    /// a patient-CNN step was system time. Keeping large blocks in the heap lets steps reuse them.
    private static func keepLargeAllocations() {
        #if canImport(Glibc)
        // mallopt is in <malloc.h>, which the Glibc module does not export; values from that header.
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
        let M_TRIM_THRESHOLD: Int32 = -1, M_MMAP_MAX: Int32 = -4
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }
}
