// The mutant track: the solutions with every plausible student bug of Tests/Mutants/*.mutants
// compiled in, each behind `Mutant.on("StepN.x#k")`, so one build serves every mutant.
//
// A mutants file lists bugs as blocks: the task and what the bug is, the solution's lines (`-`,
// compared without their indentation, found once inside that task's TASK … END TASK lines) and
// the bug's lines (`+`, none to delete):
//
//     ## Step2.8: the row max summed over ranks instead of maxed
//     -    group.allReduce(&m, op: .max)
//     +    group.allReduce(&m, op: .sum)
//
// In the mutant track a one-line declaration becomes `let m = Mutant.on("Step2.8#1") ? (bug) : (solution)`;
// any other span becomes `if Mutant.on(…) { bug } else if … { … } else { solution }`.

import Foundation

struct MutantSpec {
    let id: String, task: String, title: String, file: String, line: Int
    let find: [String], replace: [String]
}

/// Reads one mutants file.
func readMutants(_ text: String, file: String) throws -> [MutantSpec] {
    var specs: [MutantSpec] = [], counts: [String: Int] = [:]
    var current: (task: String, title: String, line: Int, find: [String], replace: [String])?
    func close() {
        guard let c = current else { return }
        counts[c.task, default: 0] += 1
        specs.append(MutantSpec(id: "\(c.task)#\(counts[c.task]!)", task: c.task, title: c.title, file: file,
                                line: c.line, find: c.find, replace: c.replace))
        current = nil
    }
    for (n, line) in text.components(separatedBy: "\n").enumerated() {
        if line.hasPrefix("## ") {
            close()
            let header = line.dropFirst(3)
            guard let colon = header.firstIndex(of: ":") else {
                throw MarkerError(description: "\(file):\(n + 1): a mutant starts `## StepN.x: what the bug is`")
            }
            current = (String(header[..<colon]), header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces),
                       n + 1, [], [])
        } else if line.hasPrefix("-") || line.hasPrefix("+") {
            guard current != nil else { throw MarkerError(description: "\(file):\(n + 1): a - or + line outside a mutant") }
            if line.hasPrefix("-") { current!.find.append(String(line.dropFirst())) } else { current!.replace.append(String(line.dropFirst())) }
        } else if !line.trimmingCharacters(in: .whitespaces).isEmpty && !line.hasPrefix("#") {
            throw MarkerError(description: "\(file):\(n + 1): expected `## task: bug`, `-` or `+` lines, or a # comment")
        }
    }
    close()
    for s in specs where s.find.isEmpty {
        throw MarkerError(description: "\(s.file):\(s.line): \(s.id) has no `-` lines to find")
    }
    return specs
}

/// The mutant-track version of a solution file: every mutant of `specs` whose lines are in it,
/// compiled in behind its switch. Returns the text and the ids placed.
func mutate(_ text: String, file: String, tasks: [Task], specs: [MutantSpec]) throws -> (text: String, placed: [String]) {
    var lines = text.components(separatedBy: "\n")
    func trimmed(_ s: String) -> String { s.trimmingCharacters(in: .whitespaces) }
    // Where each mutant's lines are: once, inside its task's marked lines.
    var spans: [(range: Range<Int>, specs: [MutantSpec])] = []
    for spec in specs {
        guard let task = tasks.first(where: { $0.id == spec.task }) else { continue }
        let start = task.line   // the TASK line (1-based) is index task.line - 1; its body follows
        guard let end = lines[start...].firstIndex(where: { trimmed($0) == "// END TASK(\(task.id))" }) else { continue }
        let want = spec.find.map(trimmed)
        let hits = (start ..< max(start, end - want.count + 1)).filter { i in (0 ..< want.count).allSatisfy { trimmed(lines[i + $0]) == want[$0] } }
        guard hits.count == 1 else {
            throw MarkerError(description: "\(spec.file):\(spec.line): \(spec.id)'s `-` lines are found \(hits.count) times "
                              + "inside TASK(\(spec.task)) of \(file) (they must be found once)")
        }
        let range = hits[0] ..< hits[0] + want.count
        if let k = spans.firstIndex(where: { $0.range == range }) {
            spans[k].specs.append(spec)
        } else if let other = spans.first(where: { $0.range.overlaps(range) }) {
            throw MarkerError(description: "\(spec.file):\(spec.line): \(spec.id) overlaps \(other.specs[0].id) without "
                              + "covering the same lines; give both the same `-` lines")
        } else {
            spans.append((range, [spec]))
        }
    }
    let declaration = #"^(\s*)((?:let|var)\s+[^=]+?)\s*=\s*(.+)$"#
    func parts(_ s: String) -> (indent: String, left: String, right: String)? {
        guard let m = s.range(of: declaration, options: .regularExpression), m == s.startIndex..<s.endIndex else { return nil }
        let indent = String(s.prefix { $0 == " " })
        let body = s.dropFirst(indent.count)
        let eq = body.range(of: " = ")!
        return (indent, String(body[..<eq.lowerBound]), withoutComment(String(body[eq.upperBound...])))
    }
    /// `x + 1   // note` → `x + 1`: a trailing comment must not end up inside the ternary's parentheses.
    func withoutComment(_ s: String) -> String {
        var quotes = 0, previous: Character = " "
        for (i, ch) in zip(s.indices, s) {
            if ch == "\"" { quotes += 1 }
            if ch == "/", previous == "/", quotes % 2 == 0 {
                return String(s[..<s.index(before: i)]).trimmingCharacters(in: .whitespaces)
            }
            previous = ch
        }
        return s
    }
    /// The name a declaration binds: `var y: [Float]` → `y`.
    func name(_ left: String) -> String {
        String(left.drop { $0 != " " }.dropFirst().prefix { $0 != ":" }).trimmingCharacters(in: .whitespaces)
    }
    for (range, group) in spans.sorted(by: { $0.range.lowerBound > $1.range.lowerBound }) {
        let original = Array(lines[range])
        let indent = String(original[0].prefix { $0 == " " })
        func reindent(_ block: [String]) -> [String] {
            let cut = block.filter { !trimmed($0).isEmpty }.map { $0.prefix { $0 == " " }.count }.min() ?? 0
            return block.map { indent + String($0.dropFirst(min(cut, $0.prefix { $0 == " " }.count))) }
        }
        if original.count == 1, let o = parts(original[0]),
           group.allSatisfy({ $0.replace.count == 1 && parts(reindent($0.replace)[0]).map { name($0.left) } == name(o.left) }) {
            let chain = group.map { "Mutant.on(\(literal($0.id))) ? (\(parts(reindent($0.replace)[0])!.right)) : " }.joined()
            lines.replaceSubrange(range, with: [o.indent + o.left + " = " + chain + "(\(o.right))"])
        } else {
            if original.contains(where: { parts($0) != nil }) {
                throw MarkerError(description: "\(group[0].file):\(group[0].line): \(group[0].id) changes lines that declare "
                                  + "a name; mutate one declaration line (let x = …) or statements only")
            }
            var out: [String] = []
            for (k, spec) in group.enumerated() {
                out.append(indent + (k == 0 ? "" : "} else ") + "if Mutant.on(\(literal(spec.id))) {")
                out += reindent(spec.replace).map { "    " + $0 }
            }
            out.append(indent + "} else {")
            out += original.map { "    " + $0 }
            out.append(indent + "}")
            lines.replaceSubrange(range, with: out)
        }
    }
    if !spans.isEmpty, !lines.contains("import ExerciseKit") {
        let imports = lines.indices.filter { lines[$0].hasPrefix("import ") }
        lines.insert("import ExerciseKit", at: imports.last { lines[$0] < "import ExerciseKit" }.map { $0 + 1 } ?? imports.first ?? 0)
    }
    return (lines.joined(separator: "\n"), spans.flatMap { $0.specs.map(\.id) })
}

/// The tests of each task: `Class/testMethod` of every test method in `testDir` whose body names
/// the task (the string "StepN.x").
func testsByTask(in testDir: URL, files: [String]) -> [String: [String]] {
    var result: [String: [String]] = [:]
    for name in files {
        guard let text = try? String(contentsOf: testDir.appendingPathComponent(name), encoding: .utf8) else { continue }
        var className = "", method: String?, body = ""
        func flush() {
            guard let m = method else { return }
            let ids = body.matches(of: #/"(Step[0-9]+\.[0-9]+)"/#).map { String($0.1) }
            for id in Set(ids) { result[id, default: []].append("\(className)/\(m)") }
        }
        for line in text.components(separatedBy: "\n") {
            if let c = line.firstMatch(of: #/^(?:final )?class (\w+)/#) { flush(); method = nil; className = String(c.1) }
            if let f = line.firstMatch(of: #/^\s+func (test\w+)/#) { flush(); method = String(f.1); body = "" } else
            if line.firstMatch(of: #/^\s+func /#) != nil { flush(); method = nil }
            body += line + "\n"
        }
        flush()
    }
    return result.mapValues { $0.sorted() }
}
