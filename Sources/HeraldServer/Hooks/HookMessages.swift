import HeraldProtocol

/// The JSON the backend hooks exchange (docs/hooks.md): a request per hook, and one answer
/// shape for all — `{"result":{…}}` or `{"error":{"code":…,"message":"…"}}`.
enum HookMessages {
    struct ConnectRequest: Encodable, Sendable {
        var client: String
        var transport: String
        var remote_addr: String
        var headers: [String: String]
    }

    struct ConnectResult: Decodable, Sendable, Equatable {
        var user: String
        var expires_at: Int64?
        var channels: [String]?
    }

    struct SubscribeRequest: Encodable, Sendable {
        var client: String
        var user: String?
        var channel: String
    }

    struct Empty: Decodable, Sendable, Equatable {}

    struct PublishRequest: Encodable, Sendable {
        var client: String
        var user: String?
        var channel: String
        var text: String
    }

    struct PublishResult: Decodable, Sendable, Equatable {
        var text: String?
        var data: JSONValue?
    }

    struct RefreshRequest: Encodable, Sendable {
        var client: String
        var user: String?
    }

    struct RefreshResult: Decodable, Sendable, Equatable {
        var expires_at: Int64
    }

    struct Refusal: Decodable, Sendable, Equatable {
        var code: Int?
        var message: String?
    }

    /// Exactly one of the two; anything else is not the documented answer.
    struct Answer<Result: Decodable & Sendable>: Decodable, Sendable {
        var result: Result?
        var error: Refusal?
    }
}

/// What one hook call came to.
enum HookOutcome<Result: Sendable>: Sendable {
    case result(Result)
    /// The backend said no (its `error` object).
    case refused(code: Int?, message: String)
    /// No usable answer: down, slow, a non-2xx status, or JSON that is not the documented shape.
    case unavailable(String)

    /// The metric label.
    var label: String {
        switch self {
        case .result: "allowed"
        case .refused: "refused"
        case .unavailable: "unavailable"
        }
    }
}

import Foundation
import HeraldCore

extension RawJSON {
    /// The backend's `data` as the raw JSON a notification carries.
    init?(encoding value: JSONValue) {
        guard let bytes = try? JSONEncoder().encode(value) else { return nil }
        self.init(validating: bytes)
    }
}
