import CHiredis
import NIOCore

/// Encodes Redis commands with hiredis' `redisFormatCommandArgv`, the binary-safe form.
public enum RESPCommand {
    /// Appends the RESP encoding of `arguments` to `buffer`.
    public static func encode(_ arguments: [ByteBuffer], into buffer: inout ByteBuffer) {
        // Lay the arguments out in one block so every pointer stays valid during the call.
        var storage: [UInt8] = []
        storage.reserveCapacity(arguments.reduce(0) { $0 + $1.readableBytes })
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            storage.append(contentsOf: argument.readableBytesView)
            lengths.append(argument.readableBytes)
        }
        storage.withUnsafeBufferPointer { block in
            let base = UnsafeRawPointer(block.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            var offset = 0
            var pointers: [UnsafePointer<CChar>?] = lengths.map { length in
                defer { offset += length }
                return (base + offset).assumingMemoryBound(to: CChar.self)
            }
            var output: UnsafeMutablePointer<CChar>?
            let length = redisFormatCommandArgv(&output, Int32(arguments.count), &pointers, lengths)
            guard length >= 0, let output else { return }
            buffer.writeBytes(UnsafeRawBufferPointer(start: output, count: Int(length)))
            redisFreeCommand(output)
        }
    }

    /// Encodes one command into a fresh buffer.
    public static func encode(_ arguments: [ByteBuffer], allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: arguments.reduce(16) { $0 + $1.readableBytes + 16 })
        encode(arguments, into: &buffer)
        return buffer
    }

    /// Encodes a command given as strings.
    public static func encode(_ arguments: [String]) -> ByteBuffer {
        encode(arguments.map { ByteBuffer(string: $0) })
    }
}
