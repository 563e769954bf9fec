// Task markers in solution files, and the exercise version of a file (see main.swift for the format).

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

