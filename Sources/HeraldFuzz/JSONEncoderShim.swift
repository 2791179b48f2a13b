import Foundation
import HeraldCore
import HeraldProtocol

enum JSONEncoderShim {
    static func encode(_ message: ClientMessage) throws -> [UInt8] {
        Array(try JSONEncoder().encode(message))
    }
}
