import Foundation
import HeraldCore
import HeraldProtocol
import NIOCore
import Testing

/// ``JSONReader`` replaces `JSONDecoder` on the publish path, so it must accept exactly what a
/// `JSONDecoder` on the receiving side can read: every case is checked against both.
@Suite struct JSONReaderTests {
    func readerAccepts(_ text: [UInt8]) -> Bool {
        JSONReader.isValid(text)
    }

    func decoderAccepts(_ text: [UInt8]) -> Bool {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(text))) != nil
    }

    static let valid: [String] = [
        "{}", "[]", " { } ", "\t\n\r{}\n", "0", "-0", "1", "-1", "1.5", "-1.5e10", "1E+2", "1e-2", "0.0",
        "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1e308",
        "123456789012345678", "1234567890123456789",
        #""""#, #""a""#, #""\"\\\/\b\f\n\r\t""#, #""\u0041\u00e9\u4e2d""#, #""\ud83d\ude00""#, "\"é中😀\"",
        "true", "false", "null", #"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
        #"{"a" : [ 1 , 2 ] , "b" : { } }"#, #"[[[[[]]]]]"#, #"{"":""}"#, #"{"a":1,"a":2}"#,
        String(repeating: "[", count: 500) + String(repeating: "]", count: 500),
    ]

    static let invalid: [String] = [
        "", " ", "{", "}", "[", "]", "{,}", "[,]", #"{"a"}"#, #"{"a":}"#, #"{a:1}"#,
        "{'a':1}", "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity",
        "1e400", "-1e400", "tru", "nul", "True", "{} {}", "[] x", #""abc"#, #""\x""#, #""\u12""#,
        #""\u12G4""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, "\"a\u{01}b\"", "\"tab\there\"",
        "/* c */ {}", "{} // c", #"{"a":1 "b":2}"#, "[1 2]",
        String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
    ]

    @Test(arguments: valid) func acceptsWhatADecoderAccepts(_ text: String) {
        let bytes = Array(text.utf8)
        #expect(decoderAccepts(bytes), "test case itself: JSONDecoder should accept \(text.prefix(40))")
        #expect(readerAccepts(bytes))
    }

    @Test(arguments: invalid) func refusesWhatADecoderRefuses(_ text: String) {
        let bytes = Array(text.utf8)
        #expect(!decoderAccepts(bytes), "test case itself: JSONDecoder should refuse \(text.prefix(40))")
        #expect(!readerAccepts(bytes))
    }

    /// `JSONDecoder` tolerates trailing commas; RFC 8259, browsers' `JSON.parse` and this reader
    /// do not. The reader must refuse them: `data` is forwarded as it came, to any client.
    @Test func isStricterThanJSONDecoderOnTrailingCommas() {
        for text in ["[1,]", #"{"a":1,}"#, #"{"data":{"a":[1,2,],}}"#] {
            #expect(decoderAccepts(Array(text.utf8)), "the divergence this test documents: \(text)")
            #expect(!readerAccepts(Array(text.utf8)), "\(text)")
        }
    }

    func hasTrailingComma(_ bytes: [UInt8]) -> Bool {
        let compact = bytes.filter { $0 != 0x20 }
        return zip(compact, compact.dropFirst()).contains { $0 == UInt8(ascii: ",") && ($1 == UInt8(ascii: "]") || $1 == UInt8(ascii: "}")) }
    }

    @Test func refusesInvalidUTF8InStrings() {
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xE4, 0xB8], [0xED, 0xA0, 0x80], [0xF5, 0x80, 0x80, 0x80]] {
            let text = Array(#"{"a":""#.utf8) + bad + Array(#""}"#.utf8)
            #expect(!readerAccepts(text), "bytes \(bad)")
            #expect(!decoderAccepts(text), "bytes \(bad)")
        }
        // Non-ASCII outside a string is not JSON either.
        #expect(!readerAccepts([0xC3, 0xA9]))
    }

    @Test func agreesWithTheDecoderOnMutatedDocuments() {
        // Every one-byte deletion and substitution of a document with every kind of value.
        let document = Array(#"{"t":"a\"b\u00e9","n":[-1.5e3,0,12],"o":{"x":true,"y":null,"z":false}}"#.utf8)
        let replacements: [UInt8] = [UInt8(ascii: "\""), UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "1"), 0x20, 0x00, 0xFF]
        var checked = 0
        for index in document.indices {
            var deleted = document
            deleted.remove(at: index)
            #expect(readerAccepts(deleted) == (decoderAccepts(deleted) && !hasTrailingComma(deleted)), "deleting byte \(index)")
            for byte in replacements where byte != document[index] {
                var changed = document
                changed[index] = byte
                let expected = decoderAccepts(changed) && !hasTrailingComma(changed)
                #expect(readerAccepts(changed) == expected, "byte \(index) → \(byte)")
                checked += 1
            }
        }
        #expect(checked > 300)
    }

    @Test func readsTopLevelFieldsAndKeepsRawValues() throws {
        let text = Array(#" {"title":"Hi \"you\"\n","n":12,"data":{"k":[1, 2]},"skip":null,"title2":"\ud83d\ude00"} "#.utf8)
        let fields = try #require(try JSONReader.objectFields(text))
        #expect(fields["title"]?.kind == .string)
        #expect(fields["title"]?.string == "Hi \"you\"\n")
        #expect(fields["title2"]?.string == "😀")
        #expect(fields["n"]?.kind == .number)
        #expect(fields["skip"]?.kind == .null)
        let data = try #require(fields["data"])
        #expect(data.kind == .object)
        #expect(JSONReader.raw(data, in: text).bytes == Array(#"{"k":[1, 2]}"#.utf8))
        #expect(try JSONReader.objectFields(Array("[1]".utf8)) == nil)
        // A repeated key keeps its first value, like JSONDecoder.
        #expect(try JSONReader.objectFields(Array(#"{"a":"1","a":"2"}"#.utf8))?["a"]?.string == "1")
    }

    @Test func readsArraysOfStrings() throws {
        let text = Array(#"{"ok":["a", "b\u0041" ,""],"mixed":["a",1],"empty":[ ]}"#.utf8)
        let fields = try #require(try JSONReader.objectFields(text))
        #expect(JSONReader.strings(ofArray: fields["ok"]!, in: text) == ["a", "bA", ""])
        #expect(JSONReader.strings(ofArray: fields["mixed"]!, in: text) == nil)
        #expect(JSONReader.strings(ofArray: fields["empty"]!, in: text) == [])
    }

    @Test func failuresSayWhere() {
        let failure = #expect(throws: JSONReader.Failure.self) {
            _ = try JSONReader.objectFields(Array(#"{"a":1 "b":2}"#.utf8))
        }
        #expect(failure?.reason == "expected ',' or '}'")
        #expect(failure?.offset == 7)
    }
}
