
/// The node's configuration behind one reference, for objects that exist once per
/// connection: `HeraldConfiguration` is a large value (TLS settings, keys, lists), and a copy
/// inside every connection cost about half a KiB each at 10,000 connections.
final class SharedConfiguration: Sendable {
    let configuration: HeraldConfiguration

    init(_ configuration: HeraldConfiguration) {
        self.configuration = configuration
    }
}
