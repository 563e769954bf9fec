// OutputFile.swift: writing a file a user named, without ever replacing what the name points at.
//
// A regular file is written whole to a temporary name beside it and renamed over it, so a crash or
// a full disk leaves the previous file as it was. But a name can also be a symbolic link (to a file
// kept elsewhere) or a device (`/dev/null`, a terminal): renaming over those would silently put a
// regular file in their place. So the name is first followed through its links, and what it ends
// at decides: a regular file (or nothing yet) is replaced atomically, anything else that can be
// written (a device, a pipe) is written through, and a directory is an error.
import Foundation

public enum OutputFile {
    /// What a path ends at after following its symbolic links.
    public enum Target: Equatable, Sendable {
        /// Nothing there yet: the file will be created.
        case absent
        case regularFile
        case directory
        /// A device, pipe or socket: written through, never replaced.
        case special
    }

    /// `path` with every symbolic link followed (also a link to a file that does not exist yet),
    /// and what is there.
    public static func resolve(_ path: String) throws -> (path: String, target: Target) {
        var current = path
        for _ in 0 ..< 40 {
            var info = stat()
            guard lstat(current, &info) == 0 else {
                guard errno == ENOENT else { throw failure(path, "cannot inspect it (\(String(cString: strerror(errno))))") }
                return (current, .absent)
            }
            switch info.st_mode & S_IFMT {
            case S_IFLNK:
                let destination = try FileManager.default.destinationOfSymbolicLink(atPath: current)
                current = destination.hasPrefix("/") ? destination
                    : URL(fileURLWithPath: current).deletingLastPathComponent().appendingPathComponent(destination).path
            case S_IFREG: return (current, .regularFile)
            case S_IFDIR: return (current, .directory)
            default: return (current, .special)
            }
        }
        throw failure(path, "too many levels of symbolic links")
    }

    /// Writes what `body` writes into `url`: atomically for a regular file (a temporary file beside
    /// it, flushed, then renamed), straight through for a device or pipe. On any error a regular
    /// file is left as it was.
    public static func write(to url: URL, _ body: (FileHandle) throws -> Void) throws {
        let (path, target) = try resolve(url.path)
        switch target {
        case .directory:
            throw failure(url.path, "is a directory", fix: "Name a file inside it")
        case .special:
            let fd = open(path, O_WRONLY | O_TRUNC)
            guard fd >= 0 else { throw failure(url.path, "cannot open it for writing (\(String(cString: strerror(errno))))") }
            let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
            do { try body(handle) } catch { throw failure(url.path, describe(error)) }
        case .absent, .regularFile:
            let destination = URL(fileURLWithPath: path)
            let directory = destination.deletingLastPathComponent()
            let temporary = directory.appendingPathComponent(".\(destination.lastPathComponent).\(getpid()).\(UUID().uuidString).tmp")
            let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            guard fd >= 0 else {
                throw failure(url.path, "cannot create a temporary file in \(directory.path) (\(String(cString: strerror(errno))))",
                              fix: "Check that the folder exists and is writable")
            }
            var renamed = false
            defer { if !renamed { unlink(temporary.path) } }
            do {
                let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
                try body(handle)
                try handle.synchronize()   // the bytes are on disk before the name points at them
                try handle.close()
            } catch {
                throw failure(url.path, describe(error),
                              fix: "Check free disk space and permissions; the previous file, if any, is unchanged")
            }
            if target == .regularFile {   // keep the permissions the user gave the file
                var info = stat()
                if stat(path, &info) == 0 { chmod(temporary.path, info.st_mode & 0o7777) }
            }
            guard rename(temporary.path, path) == 0 else {
                throw failure(url.path, "cannot move the finished file into place (\(String(cString: strerror(errno))))")
            }
            renamed = true
        }
    }

    /// Writes `data` into `url` (see `write(to:_:)`).
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { try $0.write(contentsOf: data) }
    }

    /// Foundation's errors as one short phrase ("No space left on device"), not a Cocoa domain dump.
    public static func describe(_ error: Error) -> String {
        if let e = error as? ModelFileError { return e.problem }
        let ns = error as NSError
        if let posix = ns.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(posix.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        switch ns.code {
        case NSFileWriteOutOfSpaceError: return "no space left on the disk"
        case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: return "permission denied"
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or folder"
        default: return ns.localizedDescription
        }
    }

    static func failure(_ file: String, _ problem: String, fix: String? = nil) -> ModelFileError {
        ModelFileError(.io, file: file, problem: problem, fix: fix)
    }
}
