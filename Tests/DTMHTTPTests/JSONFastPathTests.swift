import DTMCore
import Foundation
import JSONSupport
import Testing

@testable import DTMHTTP

/// The JSON fast paths: what the request scanner takes must decode exactly as JSONDecoder decodes it, and what it
/// does not take must be left to JSONDecoder (and so keep its answers and error messages).
@Suite("JSON fast paths")
struct JSONFastPathTests {
    /// Bodies the fast path takes: the shapes dtm-bench, dtmcli and curl users send.
    static let taken: [String] = [
        #"{"gid":"g1","trans_type":"saga","steps":[{"action":"http://127.0.0.1:1/a","compensate":"http://127.0.0.1:1/b"}],"payloads":["{\"amount\":30}"],"wait_result":false}"#,
        #"{"gid":"g2","trans_type":"msg","steps":[{"action":"http:\/\/127.0.0.1:1\/a"}],"payloads":["x"],"query_prepared":"http://127.0.0.1:1/q","custom_data":"","timeout_to_fail":-3,"request_timeout":0,"retry_interval":9223372036854775807,"retry_limit":2}"#,
        #" { "gid" : null , "trans_type" : "tcc" , "steps" : null , "payloads" : [ ] , "branch_headers" : { "a" : "b\n\t\"" } , "req_extra" : {} , "concurrent" : true , "protocol" : "json-rpc" } "#,
        #"{"gid":"é😀","trans_type":"saga","steps":[{"action":null,"compensate":"c","data":"d"},{}],"status":"prepared","create_time":null,"owner":7,"x":false}"#,
        #"{}"#,
        // Keys the decoder does not know are ignored by it, and by the fast path when their values are strings.
        #"{"steps":[{"action":"a","other":"b"}]}"#,
    ]

    /// Bodies left to JSONDecoder: outside the subset, or with a repeated key whose winner JSONDecoder decides.
    static let leftToDecoder: [String] = [
        #"{"gid":"a","gid":"b"}"#,
        #"{"timeout_to_fail":1.5}"#,
        #"{"timeout_to_fail":1e3}"#,
        #"{"timeout_to_fail":01}"#,
        #"{"timeout_to_fail":9223372036854775808}"#,
        #"{"gid":"\u0041"}"#,
        #"{"steps":[null]}"#,
        #"{"steps":[{"action":"a","action":"b"}]}"#,
        #"{"payloads":[null]}"#,
        #"{"branch_headers":{"a":null}}"#,
        #"{"wait_result":1}"#,
        #"{"unknown":[1,2]}"#,
        #"{"unknown":{"a":1}}"#,
        #"{"gid":"a"} x"#,
        #"{"gid":"a",}"#,
        #"["gid"]"#,
        "{\"gid\":\"a\u{1}\"}",
        "",
    ]

    @Test("the fast path takes the common shapes and decodes them as JSONDecoder does")
    func takenAgree() throws {
        for body in Self.taken {
            let bytes = Array(body.utf8)
            #expect(TransactionRequestJSON.scan(bytes) != nil, "fast path refused \(body)")
            #expect(TransactionRequestJSON.fastPathDisagreement(bytes) == nil, "\(body)")
        }
        let first = try TransactionRequestJSON.decode(Array(Self.taken[0].utf8))
        #expect(first.gid == "g1" && first.transType == "saga" && first.payloads == [Array(#"{"amount":30}"#.utf8)])
        #expect(first.steps == [TransStep(action: "http://127.0.0.1:1/a", compensate: "http://127.0.0.1:1/b")])
    }

    @Test("bodies outside the subset go to JSONDecoder, with its answers and errors")
    func leftToDecoder() {
        for body in Self.leftToDecoder {
            #expect(TransactionRequestJSON.scan(Array(body.utf8)) == nil, "fast path took \(body)")
        }
        // JSONDecoder's error message still names the field.
        #expect(throws: DTMError.invalidArgument("wait_result: expected true or false")) {
            try TransactionRequestJSON.decode(Array(#"{"wait_result":1}"#.utf8))
        }
    }

    /// Random bodies from a grammar of the fields, their edge values and JSON's corners (seeded, so a failure
    /// repeats): whatever the fast path takes must decode to the same request with JSONDecoder.
    @Test("random bodies: the fast path and JSONDecoder never disagree")
    func randomDifferential() {
        var rng = SplitMix64(seed: 0x5EED_D7A1)
        let keys = [
            "gid", "trans_type", "steps", "payloads", "custom_data", "query_prepared", "protocol", "rollback_reason",
            "req_extra", "wait_result", "timeout_to_fail", "request_timeout", "retry_interval", "branch_headers",
            "concurrent", "retry_limit", "status", "x", "Gid", "",
        ]
        let scalars = [
            #""a""#, #""""#, #""http:\/\/127.0.0.1:1\/a?b=c""#, #""\u0041""#, #""é😀""#, #""tab\there""#, #""q\"\\""#,
            "null", "true", "false", "0", "-0", "7", "-12", "01", "1.0", "1e3", "9223372036854775807",
            "9223372036854775808", "-9223372036854775808", "nul", "truex", #""\x""#,
        ]
        let innerKeys = ["action", "compensate", "data", "k"]
        func value(_ depth: Int) -> String {
            switch rng.next() % 6 {
            case 0 where depth < 2:
                let items = (0..<Int(rng.next() % 3)).map { _ in value(depth + 1) }
                return "[" + items.joined(separator: ",") + "]"
            case 1 where depth < 2:
                let members = (0..<Int(rng.next() % 3)).map { _ in
                    "\"" + innerKeys[Int(rng.next() % UInt64(innerKeys.count))] + "\":" + value(depth + 1)
                }
                return "{" + members.joined(separator: rng.next() % 8 == 0 ? " , " : ",") + "}"
            default:
                return scalars[Int(rng.next() % UInt64(scalars.count))]
            }
        }
        var taken = 0
        let rounds = 5000
        for _ in 0..<rounds {
            let members = (0..<Int(rng.next() % 6)).map { _ in
                "\"" + keys[Int(rng.next() % UInt64(keys.count))] + "\": " + value(0)
            }
            let body = Array(("{" + members.joined(separator: ",") + "}").utf8)
            if TransactionRequestJSON.scan(body) != nil { taken += 1 }
            let disagreement = TransactionRequestJSON.fastPathDisagreement(body)
            #expect(disagreement == nil, "\(String(decoding: body, as: UTF8.self)): \(disagreement ?? "")")
        }
        // The comparison only means something if the fast path takes a fair share of the bodies.
        #expect(taken > rounds / 10, "the fast path took \(taken) of \(rounds)")
    }

    @Test("branch answers are classified by status and by the words in their body, as DTM does")
    func classify() {
        #expect(HTTPBranchCaller.classify(status: 200, body: Array(#"{"dtm_result":"SUCCESS"}"#.utf8)) == .success)
        #expect(HTTPBranchCaller.classify(status: 200, body: Array(#"{"dtm_result":"FAILURE"}"#.utf8)) == .failure(#"{"dtm_result":"FAILURE"}"#))
        #expect(HTTPBranchCaller.classify(status: 200, body: Array("xONGOING".utf8)) == .ongoing("xONGOING"))
        #expect(HTTPBranchCaller.classify(status: 409, body: []) == .failure(""))
        #expect(HTTPBranchCaller.classify(status: 425, body: Array("FAILURE".utf8)) == .ongoing("FAILURE"))
        #expect(HTTPBranchCaller.classify(status: 500, body: Array("FAILUR".utf8)) == .error("status 500: FAILUR"))
        #expect(HTTPBranchCaller.classify(status: 200, body: Array("ONGOIN".utf8)) == .success)
        #expect(HTTPBranchCaller.contains(Array("FFAILURE".utf8), "FAILURE"))
        #expect(!HTTPBranchCaller.contains(Array("FAILUR".utf8), "FAILURE"))
    }
}

/// A small seeded generator (SplitMix64), so that the random bodies are the same on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("options JSON: the one writer of DTM's shape")
struct TransOptionsJSONTests {
    @Test("what TransOptionsJSON writes reads back equal through Decodable and holds DTM's keys, omitempty applied")
    func roundTrip() throws {
        var o = TransOptions()
        o.waitResult = true
        o.timeoutToFail = Int64.max
        o.requestTimeout = 3
        o.retryInterval = -1
        o.concurrent = true
        o.retryLimit = 100
        o.retryCount = Int64.min
        o.branchHeaders = ["b": "x\"y\\z\n\t\r\u{1}/é", "a": "", "Authorization": "Bearer 1"]
        var only = TransOptions()
        only.branchHeaders = ["k": "v"]
        let expected: [(TransOptions, NSDictionary)] = [
            (TransOptions(), ["concurrent": false]),
            (
                o,
                [
                    "wait_result": true, "timeout_to_fail": Int64.max, "request_timeout": 3, "retry_interval": -1, "concurrent": true,
                    "retry_limit": 100, "retry_count": Int64.min, "branch_headers": o.branchHeaders,
                ]
            ),
            (only, ["concurrent": false, "branch_headers": ["k": "v"]]),
        ]
        for (sample, keys) in expected {
            let text = TransOptionsJSON.encode(sample)
            #expect(try JSONDecoder().decode(TransOptions.self, from: Data(text.utf8)) == sample, "\(text)")
            #expect(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary == keys, "\(text)")
            var embedded: [String] = []
            TransOptionsJSON.forEachField(sample, embedded: true) { key, _ in embedded.append(key) }
            #expect(Set(embedded) == Set((keys.allKeys as? [String] ?? []).filter { $0 != "branch_headers" && $0 != "retry_count" }))
        }
        #expect(TransOptionsJSON.encode(TransOptions()) == #"{"concurrent":false}"#)
        #expect(JSONText.quoted("a\u{1f}\"") == #""a\u001f\"""#)
    }
}
