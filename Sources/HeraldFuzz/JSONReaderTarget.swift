import Foundation
import HeraldCore
import HeraldProtocol

/// Fuzz target: ``JSONReader``, the parser of REST publish bodies, against `JSONDecoder`.
///
/// The reader forwards `data` to subscribers as the publisher's own bytes, so it must never be
/// more lenient than a decoder on the receiving side: whatever it accepts, `JSONDecoder` must
/// accept too, with the same top-level strings and the same value for every raw field. The
/// other way round, `JSONDecoder` tolerates things RFC 8259 does not (trailing commas, a NUL
/// after the value), so there the check is on the value: what a decoder reads, re-encoded as
/// standard JSON, the reader must accept.
func fuzzJSONReader(_ bytes: UnsafeBufferPointer<UInt8>) {
    let input = Array(bytes)
    let decoded = try? JSONDecoder().decode(JSONValue.self, from: Data(input))
    let fields: [String: JSONReader.Field]?
    do {
        fields = try JSONReader.objectFields(input)
    } catch {
        if let decoded, let canonical = try? JSONEncoder().encode(decoded) {
            precondition(JSONReader.isValid(Array(canonical)), "reader refused standard JSON: \(error)")
        }
        return
    }
    guard let decoded else { preconditionFailure("reader accepted what JSONDecoder refuses") }
    guard let fields else { return }
    guard case .object(let members) = decoded else { preconditionFailure("reader saw an object, JSONDecoder did not") }
    for (key, field) in fields {
        guard let member = members[key] else { preconditionFailure("field \(key) missing from JSONDecoder's object") }
        if let string = field.string {
            precondition(member == .string(string), "string \(key) differs")
        } else {
            let raw = JSONReader.raw(field, in: input)
            let again = try? JSONDecoder().decode(JSONValue.self, from: Data(raw.bytes))
            precondition(again == member, "raw value of \(key) differs")
        }
    }
}
