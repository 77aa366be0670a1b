import Foundation

/// Per-channel work after a convolution in inference, done in the same pass as the bias:
/// `leakyFirst`: out = leaky(y + b)·s + t (conv → LeakyReLU → BatchNorm);
/// otherwise:    out = leaky(y·s + t')       (conv → BatchNorm → LeakyReLU), with t' = b·s + t.
/// α = 1 means no activation, s = 1 and t = 0 no batch norm.
struct Epilogue {
    var alpha: Float = 1
    var scale: [Float]? = nil
    var shift: [Float]? = nil
    var leakyFirst = true
    private var pre: [Float] = []

    mutating func absorb(bias: [Float]?, channels: Int) {
        let b = bias ?? [Float](repeating: 0, count: channels)
        let s = scale ?? [Float](repeating: 1, count: channels)
        let t = shift ?? [Float](repeating: 0, count: channels)
        scale = s
        if leakyFirst {
            pre = b
            shift = t
        } else {
            pre = []
            shift = (0..<channels).map { b[$0] * s[$0] + t[$0] }
        }
    }

    func apply(_ y: inout Tensor) {
        let C = scale!.count
        let rows = y.count / C
        y.data.withUnsafeMutableBufferPointer { yp in
            let out = yp.baseAddress!
            parallelRanges(rows, minimum: 256) { r in apply(out, rows: r) }
        }
    }

    /// The epilogue on rows `rows` (C values each) of `out`, in place.
    func apply(_ out: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let C = scale!.count
        let a = alpha, leakyFirst = self.leakyFirst
        scale!.withUnsafeBufferPointer { sp in
            shift!.withUnsafeBufferPointer { tp in
                pre.withUnsafeBufferPointer { bp in
                    let s = sp.baseAddress!, t = tp.baseAddress!, b = bp.baseAddress
                    for row in rows {
                        let p = out + row * C
                        if leakyFirst, let b {
                            for c in 0..<C {
                                let v = p[c] + b[c]
                                p[c] = Swift.max(v, a * v) * s[c] + t[c]
                            }
                        } else {
                            for c in 0..<C {
                                let v = p[c] * s[c] + t[c]
                                p[c] = Swift.max(v, a * v)
                            }
                        }
                    }
                }
            }
        }
    }
}
