// libFuzzer target: HTTP/2 server session input. The harness, its input format and its invariants are
// FuzzSupport.H2ServerHarness, which the replay tests (Tests/*/FuzzReplayTests.swift) run too.
import FuzzSupport

func fuzzOne(_ input: [UInt8]) {
    requireNoProblems(H2ServerHarness.run(input))
}

@_cdecl("LLVMFuzzerTestOneInput")
package func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if !FUZZING
    /// Without libFuzzer: runs the harness on each file named on the command line.
    @main struct Replay {
        static func main() throws { try replayFiles(fuzzOne) }
    }
#endif
