/// String → code for a text column: open addressing over codes (4 bytes a slot, at most half full), the
/// strings themselves kept once, in the column's `strings`.
struct StringTable {
    private var slots = [Int32](repeating: -1, count: 16)
    private var count = 0
    var memoryBytes: Int { slots.capacity * 4 }

    func find(_ value: String, in strings: [String]) -> Int32? {
        let mask = slots.count - 1
        var i = value.hashValue & mask
        while true {
            let code = slots[i]
            if code < 0 { return nil }
            if strings[Int(code)] == value { return code }
            i = (i + 1) & mask
        }
    }

    /// Adds `code` (whose string is `strings[code]`, not yet in the table).
    mutating func insert(_ code: Int32, in strings: [String]) {
        if (count + 1) * 2 > slots.count {
            var bigger = StringTable()
            bigger.slots = [Int32](repeating: -1, count: slots.count * 2)
            for old in slots where old >= 0 { bigger.place(old, strings) }
            bigger.count = count
            self = bigger
        }
        place(code, strings)
        count += 1
    }

    private mutating func place(_ code: Int32, _ strings: [String]) {
        let mask = slots.count - 1
        var i = strings[Int(code)].hashValue & mask
        while slots[i] >= 0 { i = (i + 1) & mask }
        slots[i] = code
    }
}
