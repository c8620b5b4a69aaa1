import Foundation

/// Recall@10 (x, linear) against QPS (y, log scale), one panel per class, one line per engine and mode.
enum SVGPlot {
    static func write(results: [BenchResults], to path: String) throws {
        var classes: [String] = []
        for r in results { for run in r.runs where !classes.contains(run.class) { classes.append(run.class) } }
        let panelW = 360.0, panelH = 260.0, columns = 2
        let rows = (classes.count + columns - 1) / columns
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(panelW) * columns)" height="\(Int(panelH) * rows + 30)" \
            font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>

            """
        let allQPS = results.flatMap { $0.runs.map(\.qps) }.filter { $0 > 0 }
        let lo = log10(max(allQPS.min() ?? 1, 1)).rounded(.down), hi = log10(allQPS.max() ?? 10).rounded(.up)
        for (ci, className) in classes.enumerated() {
            let ox = Double(ci % columns) * panelW + 50, oy = Double(ci / columns) * panelH + 20
            let w = panelW - 70, h = panelH - 60
            svg += "<text x=\"\(ox)\" y=\"\(oy - 4)\" font-weight=\"bold\">\(className)</text>\n"
            svg += "<rect x=\"\(ox)\" y=\"\(oy)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#888\"/>\n"
            func px(_ recall: Double) -> Double { ox + (recall - 0.5) / 0.5 * w }
            func py(_ qps: Double) -> Double { oy + h - (log10(max(qps, 1)) - lo) / max(hi - lo, 1) * h }
            for tick in stride(from: lo, through: hi, by: 1) {
                svg +=
                    "<text x=\"\(ox - 4)\" y=\"\(py(pow(10, tick)) + 4)\" text-anchor=\"end\">1e\(Int(tick))</text>\n"
            }
            for r in stride(from: 0.5, through: 1.0, by: 0.1) {
                svg +=
                    "<text x=\"\(px(r))\" y=\"\(oy + h + 14)\" text-anchor=\"middle\">\(String(format: "%.1f", r))</text>\n"
            }
            var series = 0
            for result in results {
                let modes = Array(Set(result.runs.filter { $0.class == className }.map { $0.mode ?? "" })).sorted()
                for mode in modes {
                    let points = result.runs.filter { $0.class == className && ($0.mode ?? "") == mode }
                        .sorted { $0.recall_at_10 < $1.recall_at_10 }
                        .map { "\(px(max($0.recall_at_10, 0.5))),\(py($0.qps))" }
                    let color = colors[series % colors.count]
                    svg +=
                        "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>\n"
                    let name = result.engine + (mode.isEmpty ? "" : " " + mode)
                    svg +=
                        "<text x=\"\(ox + 6)\" y=\"\(oy + 14 + Double(series) * 13)\" fill=\"\(color)\">\(name)</text>\n"
                    series += 1
                }
            }
        }
        svg +=
            "<text x=\"10\" y=\"\(Double(rows) * panelH + 20)\">x: recall@10, y: queries per second (log)</text>\n</svg>\n"
        try svg.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
