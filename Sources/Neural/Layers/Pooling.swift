import Foundation

/// Max or average pooling over k×k windows. Average pooling divides by the pixels inside the image
/// (padding excluded, as Keras does with 'same').
public final class Pool2D: Layer {
    public enum Kind: String, Sendable { case max, average }
    public let name: String
    public let kind: Kind
    public let kernel: Int, stride: Int, padding: Padding
    private var state: (shape: [Int], argmax: [Int32])?

    public init(name: String, kind: Kind, kernel: Int, stride: Int? = nil, padding: Padding = .valid) {
        self.name = name
        self.kind = kind
        self.kernel = kernel
        self.stride = stride ?? kernel
        self.padding = padding
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 3 else { throw NeuralError.shapeMismatch(layer: name, expected: "[H, W, C]", got: s) }
        let h = convGeometry(input: s[0], kernel: kernel, stride: stride, padding: padding).out
        let w = convGeometry(input: s[1], kernel: kernel, stride: stride, padding: padding).out
        guard h > 0, w > 0 else { throw NeuralError.shapeMismatch(layer: name, expected: "at least \(kernel)×\(kernel) pixels", got: s) }
        return [h, w, s[2]]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try checkRank(x, 4, "[N, H, W, C]")
        let o = try outputShape(Array(x.shape.dropFirst()))
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], C = x.shape[3], ho = o[0], wo = o[1]
        let pt = convGeometry(input: h, kernel: kernel, stride: stride, padding: padding).padBefore
        let pl = convGeometry(input: w, kernel: kernel, stride: stride, padding: padding).padBefore
        var argmax = [Int32](repeating: 0, count: kind == .max && training ? n * ho * wo * C : 0)
        let isMax = kind == .max
        let g = Conv2D.Geometry(n: n, h: h, w: w, c: C, ho: ho, wo: wo, pt: pt, pl: pl, kh: kernel, kw: kernel, s: stride)
        let y = Tensor(uninitialized: [n, ho, wo, C]) { out, _ in
            x.data.withUnsafeBufferPointer { xp in
                argmax.withUnsafeMutableBufferPointer { ap in
                    let xb = xp.baseAddress!, am = ap.isEmpty ? nil : ap.baseAddress
                    parallelRanges(n * ho, minimum: 2) { r in
                        for t in r {
                            let img = t / ho, oh = t % ho
                            for ow in 0..<wo {
                                let o = out + ((img * ho + oh) * wo + ow) * C
                                var seen = 0
                                g.forEachTap(ofOutputRow: oh, column: ow) { _, ih, iw in
                                    let index = (img * h + ih) * w + iw
                                    let src = xb + index * C
                                    if seen == 0 {
                                        o.update(from: src, count: C)
                                        if let am { for c in 0..<C { am[(o - out) + c] = Int32(index) } }
                                    } else if isMax {
                                        for c in 0..<C where src[c] > o[c] {
                                            o[c] = src[c]
                                            if let am { am[(o - out) + c] = Int32(index) }
                                        }
                                    } else {
                                        for c in 0..<C { o[c] += src[c] }
                                    }
                                    seen += 1
                                }
                                if !isMax { let inv = 1 / Float(seen); for c in 0..<C { o[c] *= inv } }
                            }
                        }
                    }
                }
            }
        }
        if training { state = (x.shape, argmax) }
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let (shape, argmax) = try requireState(state)
        let n = shape[0], h = shape[1], w = shape[2], C = shape[3]
        let o = try outputShape(Array(shape.dropFirst()))
        let ho = o[0], wo = o[1]
        guard dy.shape == [n, ho, wo, C] else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient [\(n), \(ho), \(wo), \(C)]", got: dy.shape) }
        var dx = [Float](repeating: 0, count: shape.reduce(1, *))
        if kind == .max {
            for i in 0..<dy.count { dx[Int(argmax[i]) * C + i % C] += dy.data[i] }
        } else {
            let pt = convGeometry(input: h, kernel: kernel, stride: stride, padding: padding).padBefore
            let pl = convGeometry(input: w, kernel: kernel, stride: stride, padding: padding).padBefore
            for img in 0..<n {
                for oh in 0..<ho {
                    for ow in 0..<wo {
                        let rows = (0..<kernel).map { oh * stride - pt + $0 }.filter { $0 >= 0 && $0 < h }
                        let cols = (0..<kernel).map { ow * stride - pl + $0 }.filter { $0 >= 0 && $0 < w }
                        let inv = 1 / Float(rows.count * cols.count)
                        let g = ((img * ho + oh) * wo + ow) * C
                        for ih in rows {
                            for iw in cols {
                                let d = ((img * h + ih) * w + iw) * C
                                for c in 0..<C { dx[d + c] += dy.data[g + c] * inv }
                            }
                        }
                    }
                }
            }
        }
        return Tensor(shape: shape, data: dx)
    }
}

/// [N, H, W, C] → [N, C]: mean or max over all pixels.
public final class GlobalPool: Layer {
    public let name: String
    public let kind: Pool2D.Kind
    private var state: (shape: [Int], argmax: [Int])?

    public init(name: String, kind: Pool2D.Kind) {
        self.name = name
        self.kind = kind
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 3 else { throw NeuralError.shapeMismatch(layer: name, expected: "[H, W, C]", got: s) }
        return [s[2]]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try checkRank(x, 4, "[N, H, W, C]")
        let n = x.shape[0], p = x.shape[1] * x.shape[2], C = x.shape[3]
        var y = [Float](repeating: kind == .max ? -.infinity : 0, count: n * C)
        var argmax = [Int](repeating: 0, count: kind == .max ? n * C : 0)
        for img in 0..<n {
            var acc = [Double](repeating: 0, count: C)
            for q in 0..<p {
                let base = (img * p + q) * C
                for c in 0..<C {
                    let v = x.data[base + c]
                    if kind == .max {
                        if v > y[img * C + c] || q == 0 { y[img * C + c] = v; argmax[img * C + c] = base + c }
                    } else {
                        acc[c] += Double(v)
                    }
                }
            }
            if kind == .average { for c in 0..<C { y[img * C + c] = Float(acc[c] / Double(p)) } }
        }
        if training { state = (x.shape, argmax) }
        return Tensor(shape: [n, C], data: y)
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let (shape, argmax) = try requireState(state)
        let n = shape[0], p = shape[1] * shape[2], C = shape[3]
        guard dy.shape == [n, C] else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient [\(n), \(C)]", got: dy.shape) }
        var dx = [Float](repeating: 0, count: n * p * C)
        if kind == .max {
            for i in 0..<(n * C) { dx[argmax[i]] += dy.data[i] }
        } else {
            let inv = 1 / Float(p)
            for img in 0..<n { for q in 0..<p { for c in 0..<C { dx[(img * p + q) * C + c] = dy.data[img * C + c] * inv } } }
        }
        return Tensor(shape: shape, data: dx)
    }
}
