import Foundation

/// Binary and one-vs-rest ROC analysis, matching scikit-learn's `roc_auc_score` and `roc_curve`.
public enum ROC {
    /// Area under the ROC curve = P(score of a positive > score of a negative) + ½ P(equal).
    /// nil when only one class is present.
    public static func auc(labels: [Bool], scores: [Double]) -> Double? {
        // invariant: callers pass two columns of the same prediction rows, so the lengths agree
        precondition(labels.count == scores.count, "auc: lengths differ")
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let ranks = Correlation.averageRanks(scores)
        var rankSum = 0.0
        for i in labels.indices where labels[i] { rankSum += ranks[i] }
        let u = rankSum - Double(positives) * Double(positives + 1) / 2
        return u / (Double(positives) * Double(negatives))
    }

    /// Points of the ROC curve at every distinct threshold, from (0,0) to (1,1).
    public static func curve(labels: [Bool], scores: [Double]) -> [(fpr: Double, tpr: Double, threshold: Double)] {
        let positives = Double(labels.filter { $0 }.count), negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return [] }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var points: [(Double, Double, Double)] = [(0, 0, .infinity)]
        var tp = 0.0, fp = 0.0
        var i = 0
        while i < order.count {
            let threshold = scores[order[i]]
            while i < order.count && scores[order[i]] == threshold {
                if labels[order[i]] { tp += 1 } else { fp += 1 }
                i += 1
            }
            points.append((fp / negatives, tp / positives, threshold))
        }
        return points.map { (fpr: $0.0, tpr: $0.1, threshold: $0.2) }
    }

    /// Macro average of one-vs-rest AUCs over the classes present (scikit-learn `multi_class="ovr"`).
    /// `probabilities[i][k]` is sample i's score for class k.
    public static func macroAUC(labels: [Int], probabilities: [[Double]]) -> Double? {
        let classes = Array(Set(labels)).sorted()
        guard classes.count >= 2 else { return nil }
        var total = 0.0
        for k in classes {
            guard let a = auc(labels: labels.map { $0 == k }, scores: probabilities.map { $0[k] }) else { return nil }
            total += a
        }
        return total / Double(classes.count)
    }
}
