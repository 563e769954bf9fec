// generate-exercises: writes every exercises/StepN_* file from its solutions/StepN_* file.
//
// A solution marks each task's lines; the exercise gets, in their place, the instructions, the
// TODO marker and a harmless stand-in that compiles:
//
//     // TASK(Step2.1) copyToTensorParallelRegion (f) backward @ Lessons/02-tensor-parallel.md, Task 2.1
//     // > dy is this rank's part of ∂L/∂x. Return the sum over the ranks of the
//     // > group (one call on `group`).
//     var dx = dy                           <- the solution's lines, left out of the exercise
//     group.allReduce(&dx)
//     return [dx]
//     // STAND-IN: return [dy]              <- the exercise's lines, in the solution as comments
//     // END TASK(Step2.1)
//
// becomes, in the exercise,
//
//     // TODO(Step2.1): dy is this rank's part of ∂L/∂x. Return the sum over the ranks of the
//     // group (one call on `group`).
//     Todo.reached("Step2.1", "copyToTensorParallelRegion (f) backward", lesson: "Lessons/02-…, Task 2.1")
//     return [dy]
//
// Every other line is copied as it is, and a file with tasks gets `import ExerciseKit` (where
// `Todo` lives). Files without tasks are copied whole, so exercises/ is a complete module.
//
// Usage (from the package root):
//   swift run generate-exercises           check: exit 1 and name the files when exercises/ is stale
//   swift run generate-exercises --write   write exercises/ from solutions/
// Both fail on unbalanced or malformed markers, a task id used twice, and a task that no test
// in Tests/StepN_*Tests names (as the string "StepN.x").

import Foundation

struct Task {
    let id: String, title: String, lesson: String, file: String, line: Int
}

struct MarkerError: Error, CustomStringConvertible {
    let description: String
}

/// A Swift string literal of `s`.
func literal(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// The exercise version of one solution file, and the tasks it holds.
func exercise(of text: String, file: String) throws -> (text: String, tasks: [Task]) {
    var out: [String] = [], tasks: [Task] = []
    var open: (task: Task, indent: String, instructions: [String], standIn: [String], inCode: Bool)?
    let lines = text.components(separatedBy: "\n")
    for (n, line) in lines.enumerated() {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        let indent = String(line.prefix { $0 == " " })
        func fail(_ why: String) -> MarkerError { MarkerError(description: "\(file):\(n + 1): \(why)") }
        if trimmed.hasPrefix("// TASK(") {
            if let o = open { throw fail("TASK inside \(o.task.id), which has no END TASK(\(o.task.id)) yet") }
            guard let close = trimmed.firstIndex(of: ")"), let at = trimmed.range(of: " @ ", options: .backwards) else {
                throw fail("a task starts `// TASK(StepN.x) title @ lesson section`")
            }
            let id = String(trimmed[trimmed.index(trimmed.startIndex, offsetBy: 8)..<close])
            let title = trimmed[trimmed.index(after: close)..<at.lowerBound].trimmingCharacters(in: .whitespaces)
            let lesson = String(trimmed[at.upperBound...]).trimmingCharacters(in: .whitespaces)
            guard id.range(of: #"^Step[0-9]+\.[0-9]+$"#, options: .regularExpression) != nil, !title.isEmpty, !lesson.isEmpty else {
                throw fail("malformed task header (id \(literal(id)), title \(literal(title)), lesson \(literal(lesson)))")
            }
            open = (Task(id: id, title: title, lesson: lesson, file: file, line: n + 1), indent, [], [], false)
        } else if trimmed.hasPrefix("// END TASK(") {
            guard let o = open else { throw fail("END TASK without a TASK") }
            guard trimmed == "// END TASK(\(o.task.id))" else { throw fail("\(trimmed) closes \(o.task.id)") }
            guard !o.instructions.isEmpty else { throw fail("\(o.task.id) has no `// >` instructions") }
            var first = true
            for i in o.instructions {
                out.append(o.indent + (first ? "// TODO(\(o.task.id)):" : "//") + (i.isEmpty ? "" : " " + i))
                first = false
            }
            let call = "Todo.reached(\(literal(o.task.id)), \(literal(o.task.title)), lesson: \(literal(o.task.lesson)))"
            if o.indent.count + call.count <= 120 {
                out.append(o.indent + call)
            } else {
                out.append(o.indent + "Todo.reached(\(literal(o.task.id)), \(literal(o.task.title)),")
                out.append(o.indent + String(repeating: " ", count: 13) + "lesson: \(literal(o.task.lesson)))")
            }
            out += o.standIn.map { o.indent + $0 }
            tasks.append(o.task)
            open = nil
        } else if var o = open {
            if trimmed.hasPrefix("// >") && !o.inCode {
                let text = String(trimmed.dropFirst(4))
                o.instructions.append(text.hasPrefix(" ") ? String(text.dropFirst()) : text)
            } else if trimmed.hasPrefix("// STAND-IN:") {
                guard line.hasPrefix(o.indent + "// STAND-IN:") else { throw fail("a STAND-IN line is indented as its TASK") }
                let rest = String(line.dropFirst(o.indent.count + "// STAND-IN:".count))
                o.standIn.append(rest.hasPrefix(" ") ? String(rest.dropFirst()) : rest)
            } else {
                guard o.standIn.isEmpty else { throw fail("solution code after the STAND-IN lines of \(o.task.id)") }
                o.inCode = true
            }
            open = o
        } else if trimmed.hasPrefix("// STAND-IN:") || trimmed.hasPrefix("// >") {
            throw fail("\(trimmed.prefix(12))… outside a task")
        } else {
            out.append(line)
        }
    }
    if let o = open { throw MarkerError(description: "\(file):\(o.task.line): TASK(\(o.task.id)) has no END TASK") }
    if !tasks.isEmpty, !out.contains("import ExerciseKit") {   // in its sorted place among the imports
        let imports = out.indices.filter { out[$0].hasPrefix("import ") }
        let at = imports.last { out[$0] < "import ExerciseKit" }.map { $0 + 1 } ?? imports.first ?? 0
        out.insert("import ExerciseKit", at: at)
    }
    return (out.joined(separator: "\n"), tasks)
}

func swiftFiles(in dir: URL) -> [String] {
    let names = (try? FileManager.default.subpathsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasSuffix(".swift") }.sorted()
}

func main() -> Int32 {
    let write = CommandLine.arguments.dropFirst().contains("--write")
    if let bad = CommandLine.arguments.dropFirst().first(where: { $0 != "--write" }) {
        print("generate-exercises: unknown argument \(bad); use --write to write, nothing to check")
        return 2
    }
    let fm = FileManager.default
    let root = URL(fileURLWithPath: fm.currentDirectoryPath)
    let solutions = root.appendingPathComponent("solutions")
    guard let steps = try? fm.contentsOfDirectory(atPath: solutions.path).filter({ $0.hasPrefix("Step") }).sorted() else {
        print("generate-exercises: no solutions/ here; run it from the package root")
        return 2
    }
    var problems: [String] = [], stale: [String] = [], seen: [String: Task] = [:], count = 0
    for step in steps {
        let exerciseDir = root.appendingPathComponent("exercises/\(step)")
        let tests = root.appendingPathComponent("Tests/\(step)Tests")
        let testText = swiftFiles(in: tests).compactMap { try? String(contentsOf: tests.appendingPathComponent($0), encoding: .utf8) }
            .joined(separator: "\n")
        let files = swiftFiles(in: solutions.appendingPathComponent(step))
        for name in files {
            let path = "solutions/\(step)/\(name)"
            guard let text = try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) else {
                problems.append("\(path): cannot read it"); continue
            }
            do {
                let (generated, tasks) = try exercise(of: text, file: path)
                for t in tasks {
                    if let other = seen[t.id] { problems.append("\(path):\(t.line): \(t.id) is also the task at \(other.file):\(other.line)") }
                    seen[t.id] = t
                    if !testText.contains("\"\(t.id)\"") {
                        problems.append("\(path):\(t.line): no test in Tests/\(step)Tests names \(t.id) (as the string \"\(t.id)\")")
                    }
                }
                count += tasks.count
                let target = exerciseDir.appendingPathComponent(name)
                let current = try? String(contentsOf: target, encoding: .utf8)
                let isLink = (try? fm.destinationOfSymbolicLink(atPath: target.path)) != nil
                if current != generated || isLink {
                    stale.append("exercises/\(step)/\(name)")
                    if write {
                        try? fm.removeItem(at: target)
                        try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                        try generated.write(to: target, atomically: true, encoding: .utf8)
                    }
                }
            } catch {
                problems.append("\(error)")
            }
        }
        for extra in swiftFiles(in: exerciseDir) where !files.contains(extra) {
            stale.append("exercises/\(step)/\(extra) (no solution file)")
            if write { try? fm.removeItem(at: exerciseDir.appendingPathComponent(extra)) }
        }
    }
    for p in problems { print("error: \(p)") }
    if write {
        print("generate-exercises: \(count) tasks in \(steps.count) steps; wrote \(stale.count) file(s)"
              + (stale.isEmpty ? "" : ": " + stale.joined(separator: ", ")))
    } else if !stale.isEmpty {
        for s in stale { print("stale: \(s)") }
        print("generate-exercises: exercises/ differs from what solutions/ generate; run `swift run generate-exercises --write`")
    } else {
        print("generate-exercises: exercises/ is up to date (\(count) tasks in \(steps.count) steps)")
    }
    return problems.isEmpty && (write || stale.isEmpty) ? 0 : 1
}

exit(main())
