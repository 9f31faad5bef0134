// libFuzzer target: JSON requests into APIRouter.handle. The harness, its input format and its invariants are
// FuzzSupport.JSONRequestHarness, which the replay tests (Tests/*/FuzzReplayTests.swift) run too.
import FuzzSupport

func fuzzOne(_ input: [UInt8]) {
    runBlocking { requireNoProblems(await JSONRequestHarness.run(input).problems) }
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
