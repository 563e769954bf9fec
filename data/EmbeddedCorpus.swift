// The default corpus ships as a SwiftPM resource so `picotron train` works with zero setup and no network.
// This tiny module exists only to own that resource: SwiftPM generates `Bundle.module` per target, and
// keeping the 1 MB text out of `Training` keeps that target's sources free of data files.

import Foundation

public enum EmbeddedCorpus {
    /// File name of the corpus inside the resource bundle (see data/README.md for source, size and checksum).
    public static let fileName = "shakespeare.txt"

    /// Where the embedded Shakespeare text is on disk, or nil if the resource bundle was not found.
    /// (SwiftPM looks for the bundle next to the executable, then in the build directory, so an executable
    /// copied to another machine must take `Picotron_EmbeddedCorpus.resources` along.)
    public static var url: URL? {
        Bundle.module.url(forResource: "shakespeare", withExtension: "txt")
    }
}
