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
//   swift run generate-exercises             check: exit 1 and name the files when exercises/ is stale
//   swift run generate-exercises --write     write exercises/ from solutions/
//   swift run generate-exercises --mutants   write mutants/, the mutant track (Mutants.swift), and
//                                            mutants/manifest.tsv: id, task, its tests, the bug
// Both fail on unbalanced or malformed markers, a task id used twice, and a task that no test
// in Tests/StepN_*Tests names (as the string "StepN.x").

import Foundation

func swiftFiles(in dir: URL) -> [String] {
    let names = (try? FileManager.default.subpathsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasSuffix(".swift") }.sorted()
}

func main() -> Int32 {
    let arguments = Array(CommandLine.arguments.dropFirst())
    let write = arguments.contains("--write"), mutants = arguments.contains("--mutants")
    let partial = arguments.contains("--partial")   // with --mutants: a task may have fewer than 4 (while writing them)
    if let bad = arguments.first(where: { !["--write", "--mutants", "--partial"].contains($0) }) {
        print("generate-exercises: unknown argument \(bad); --write writes exercises/, --mutants writes mutants/, "
              + "nothing checks exercises/")
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
    var manifest: [String] = [], perTask: [String: Int] = [:]
    for step in steps {
        let exerciseDir = root.appendingPathComponent("exercises/\(step)")
        let tests = root.appendingPathComponent("Tests/\(step)Tests")
        let testFiles = swiftFiles(in: tests)
        let byTask = testsByTask(in: tests, files: testFiles)
        let mutantsFile = "Tests/Mutants/\(step).mutants"
        var specs: [MutantSpec] = []
        if mutants {
            do {
                let text = (try? String(contentsOf: root.appendingPathComponent(mutantsFile), encoding: .utf8)) ?? ""
                specs = try readMutants(text, file: mutantsFile)
            } catch { problems.append("\(error)") }
        }
        var placed = Set<String>()
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
                    if byTask[t.id] == nil {
                        problems.append("\(path):\(t.line): no test in Tests/\(step)Tests names \(t.id) (as the string \"\(t.id)\")")
                    }
                }
                count += tasks.count
                if mutants {
                    let (mutated, ids) = try mutate(text, file: path, tasks: tasks, specs: specs)
                    placed.formUnion(ids)
                    let target = root.appendingPathComponent("mutants/\(step)/\(name)")
                    try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                    if (try? String(contentsOf: target, encoding: .utf8)) != mutated {   // unchanged files keep the build
                        try mutated.write(to: target, atomically: true, encoding: .utf8)
                    }
                    continue
                }
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
        for spec in specs {
            guard placed.contains(spec.id) else {
                problems.append("\(spec.file):\(spec.line): \(spec.id): no TASK(\(spec.task)) in solutions/\(step) holds its lines")
                continue
            }
            perTask[spec.task, default: 0] += 1
            let filter = (byTask[spec.task] ?? []).map { "\(step)Tests.\($0)" }.joined(separator: ",")   // xctest's filter list
            manifest.append([spec.id, spec.task, filter, spec.title].joined(separator: "\t"))
        }
        if !mutants {
            for extra in swiftFiles(in: exerciseDir) where !files.contains(extra) {
                stale.append("exercises/\(step)/\(extra) (no solution file)")
                if write { try? fm.removeItem(at: exerciseDir.appendingPathComponent(extra)) }
            }
        }
    }
    for p in problems { print("error: \(p)") }
    if mutants {
        for task in seen.keys.sorted(by: { $0.localizedStandardCompare($1) == .orderedAscending }) where !partial && (perTask[task] ?? 0) < 4 {
            problems.append("\(task) has \(perTask[task] ?? 0) mutants in Tests/Mutants; every task needs at least 4")
            print("error: \(problems.last!)")
        }
        let url = root.appendingPathComponent("mutants/manifest.tsv")
        try? (manifest.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        print("generate-exercises: \(manifest.count) mutants of \(perTask.count) tasks written to mutants/ "
              + "(manifest: mutants/manifest.tsv)")
    } else if write {
        print("generate-exercises: \(count) tasks in \(steps.count) steps; wrote \(stale.count) file(s)"
              + (stale.isEmpty ? "" : ": " + stale.joined(separator: ", ")))
    } else if !stale.isEmpty {
        for s in stale { print("stale: \(s)") }
        print("generate-exercises: exercises/ differs from what solutions/ generate; run `swift run generate-exercises --write`")
    } else {
        print("generate-exercises: exercises/ is up to date (\(count) tasks in \(steps.count) steps)")
    }
    return problems.isEmpty && (write || mutants || stale.isEmpty) ? 0 : 1
}

exit(main())
