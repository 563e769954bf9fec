// The table of published architectures: every entry is a valid config, the names people type find it, and the
// parameter counts are the ones the model cards publish (a wrong width or MLP size would change them).

import Llama
import XCTest

final class HubArchitectureTests: XCTestCase {
    func testEveryEntryIsValidAndHasItsPublishedParameterCount() throws {
        for (id, config) in LlamaConfig.hubArchitectures {
            XCTAssertNoThrow(try config.validate(source: id), id)
        }
        let published: [String: Int] = [
            "HuggingFaceTB/SmolLM-135M": 134_515_008,
            "HuggingFaceTB/SmolLM2-360M": 361_821_120,
            "TinyLlama/TinyLlama-1.1B-Chat-v1.0": 1_100_048_384,
            "meta-llama/Llama-2-7b-hf": 6_738_415_616,
            "meta-llama/Meta-Llama-3-8B": 8_030_261_248,
            "meta-llama/Llama-3.2-1B": 1_235_814_400,
        ]
        for (id, count) in published {
            XCTAssertEqual(LlamaConfig.hubArchitecture(named: id)?.config.parameterCount, count, id)
        }
        XCTAssertEqual(LlamaConfig.hubArchitecture(named: "HuggingFaceTB/SmolLM-135M")?.config, .smollm135m)
    }

    func testNamesFindTheirEntry() {
        let names: [(String, String)] = [
            ("HuggingFaceTB/SmolLM-1.7B", "HuggingFaceTB/SmolLM-1.7B"),
            ("smollm-1.7b", "HuggingFaceTB/SmolLM-1.7B"),
            ("HuggingFaceTB/SmolLM2-360M-Instruct", "HuggingFaceTB/SmolLM2-360M"),
            ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
            ("TinyLlama-1.1B", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
            ("meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-hf"),
            ("meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-8B"),
            ("meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B"),
        ]
        for (name, id) in names { XCTAssertEqual(LlamaConfig.hubArchitecture(named: name)?.id, id, name) }
        XCTAssertNil(LlamaConfig.hubArchitecture(named: "mistralai/Mistral-7B-v0.1"))
        XCTAssertNil(LlamaConfig.hubArchitecture(named: "HuggingFaceTB/SmolLM-1.7"))
    }
}
