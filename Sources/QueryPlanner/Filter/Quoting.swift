/// `text` between two `quote`s, each `quote` inside it doubled — by Unicode scalar, not by Character: a quote
/// followed by a combining mark is one Character (`"` + U+0740), which Character-wise search and replace
/// would not double, and the text would then end early when read back (found by fuzzing the filter parser's
/// print/parse round trip).
package func quoted(_ text: String, with quote: Unicode.Scalar) -> String {
    var out = String.UnicodeScalarView()
    out.append(quote)
    for scalar in text.unicodeScalars {
        if scalar == quote { out.append(quote) }
        out.append(scalar)
    }
    out.append(quote)
    return String(out)
}

/// Whether `text` holds any of `scalars` (by Unicode scalar, for the same reason as `quoted`).
package func containsAny(_ text: String, of scalars: Set<Unicode.Scalar>) -> Bool {
    text.unicodeScalars.contains { scalars.contains($0) }
}
