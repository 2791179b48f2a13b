import Configuration
import Foundation
import HeraldCore
import HeraldProtocol
import SystemPackage
import Yams

/// The configuration file (`--config`, `HERALD_CONFIG`): YAML, or JSON when its name ends in
/// `.json`. Values are read through swift-configuration's file provider; Yams lists the
/// namespace names and keys, which a key-based reader cannot enumerate, so that a misspelt
/// key stops the node instead of being ignored.
///
/// ```yaml
/// history_size: 100            # any setting, by its flag name with _ for -
/// unknown_namespaces: reject
/// namespaces:
///   chat: { history_size: 50, join_leave: true, subscribe_hook: true }
///   ticker: { history_size: 0, client_publish: false }
/// ```
public struct ConfigurationFile: Sendable {
    public let path: String
    private let reader: ConfigReader
    /// Each namespace's name and the keys it sets, in file order.
    let namespaceKeys: [(name: String, keys: [String])]

    /// The keys a namespace may set.
    public enum NamespaceKey: String, CaseIterable, Sendable {
        case historySize = "history_size"
        case historyTTL = "history_ttl"
        case presence
        case joinLeave = "join_leave"
        case clientPublish = "client_publish"
        case isPrivate = "private"
        case subscribeHook = "subscribe_hook"
        case publishHook = "publish_hook"
        case slowConsumer = "slow_consumer"
        case durable
    }

    /// Reads and checks the file's shape (not yet its values).
    /// - Throws: ``ConfigurationError`` naming the file, the key and the reason.
    public static func load(_ path: String) async throws(ConfigurationError) -> ConfigurationFile {
        func failure(_ key: String, _ value: String, _ expected: String) -> ConfigurationError {
            ConfigurationError(key: .config, source: key.isEmpty ? path : "\(path): \(key)", value: value, expected: expected)
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw failure("", path, "a readable configuration file")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw failure("", "\(error)".prefix(200).description, "valid YAML or JSON")
        }
        let top = root?.mapping ?? [:]
        if root != nil, root?.mapping == nil { throw failure("", "not a mapping", "a mapping of keys to values") }
        let settingKeys = Set(ConfigKey.allCases.map(\.setting.fileKey))
        var namespaceKeys: [(String, [String])] = []
        for (key, value) in top {
            guard let name = key.string else { throw failure("", "\(key)", "string keys") }
            if name == "namespaces" {
                guard let namespaces = value.mapping else { throw failure(name, "\(value)", "a mapping of namespace names") }
                for (namespace, body) in namespaces {
                    guard let namespaceName = namespace.string, Self.isValidNamespace(namespaceName) else {
                        throw failure("namespaces", "\(namespace)", "namespace names of letters, digits and _ - . (no :)")
                    }
                    guard let fields = body.mapping else {
                        throw failure("namespaces.\(namespaceName)", "\(body)", "a mapping of namespace settings")
                    }
                    var keys: [String] = []
                    for (field, _) in fields {
                        let fieldName = field.string ?? "\(field)"
                        guard NamespaceKey(rawValue: fieldName) != nil else {
                            throw failure(
                                "namespaces.\(namespaceName).\(fieldName)", fieldName,
                                "one of " + NamespaceKey.allCases.map(\.rawValue).joined(separator: ", "))
                        }
                        keys.append(fieldName)
                    }
                    namespaceKeys.append((namespaceName, keys))
                }
            } else if !settingKeys.contains(name) || name == "config" {
                throw failure(name, name, "a setting's name (herald serve --help lists them, - written _) or namespaces")
            } else if value.scalar == nil {
                throw failure(name, "\(value)", "a single value")
            }
        }
        let reader: ConfigReader
        do {
            reader = path.lowercased().hasSuffix(".json")
                ? ConfigReader(provider: try await FileProvider<JSONSnapshot>(filePath: FilePath(path)))
                : ConfigReader(provider: try await FileProvider<YAMLSnapshot>(filePath: FilePath(path)))
        } catch {
            throw failure("", "\(error)".prefix(200).description, "a file swift-configuration can read")
        }
        return ConfigurationFile(path: path, reader: reader, namespaceKeys: namespaceKeys)
    }

    static func isValidNamespace(_ name: String) -> Bool {
        !name.isEmpty && !name.contains(":") && ChannelName.isValid(name) && name.count <= 64
    }

    /// A top-level setting's raw value, if the file has it.
    func value(of key: ConfigKey) -> SettingValue? {
        let fileKey = key.setting.fileKey
        guard let raw = raw(ConfigKey_(fileKey)) else { return nil }
        return SettingValue(key: key, raw: raw, source: "\(path): \(fileKey)")
    }

    /// A scalar as text, whatever its type in the file (a JSON number is not a string).
    private func raw(_ key: ConfigKey_) -> String? {
        if let text = reader.string(forKey: key) { return text }
        if let number = reader.int(forKey: key) { return String(number) }
        if let number = reader.double(forKey: key) { return String(number) }
        if let flag = reader.bool(forKey: key) { return String(flag) }
        return nil
    }

    /// The file's namespaces, each key it leaves out taken from `global`.
    func namespaces(over global: NamespacePolicy) throws(ConfigurationError) -> [String: NamespacePolicy] {
        var result: [String: NamespacePolicy] = [:]
        for (name, keys) in namespaceKeys {
            var policy = global
            // Hooks and privacy are never inherited from the default namespace: they are the
            // namespace's own choice.
            policy.isPrivate = name == Namespaces.privateNamespace
            policy.subscribeHook = false
            policy.publishHook = false
            for key in keys {
                guard let field = NamespaceKey(rawValue: key) else { continue }
                let raw = self.raw(ConfigKey_(["namespaces", name, key])) ?? ""
                let value = SettingValue(key: .config, raw: raw, source: "\(path): namespaces.\(name).\(key)")
                switch field {
                case .historySize: policy.history.size = try value.int(0...10_000)
                case .historyTTL: policy.history.ttl = try value.seconds()
                case .presence: policy.presence = try value.bool()
                case .joinLeave: policy.joinLeave = try value.bool()
                case .clientPublish: policy.clientPublish = try value.bool()
                case .isPrivate: policy.isPrivate = try value.bool()
                case .subscribeHook: policy.subscribeHook = try value.bool()
                case .publishHook: policy.publishHook = try value.bool()
                case .durable: policy.durable = try value.bool()
                case .slowConsumer:
                    guard let rule = SlowConsumerPolicy(rawValue: raw.lowercased()) else { throw value.fail("disconnect, catch_up or latest") }
                    policy.slowConsumerSetting = rule
                }
            }
            if policy.slowConsumerSetting == .catchUp, !policy.history.isOn, keys.contains(NamespaceKey.slowConsumer.rawValue) {
                let value = SettingValue(key: .config, raw: "catch_up", source: "\(path): namespaces.\(name).slow_consumer")
                throw value.fail("history to catch up from (history_size > 0), or disconnect or latest")
            }
            result[name] = policy
        }
        return result
    }
}

/// swift-configuration's key type, named apart from Herald's own ``ConfigKey``.
typealias ConfigKey_ = Configuration.ConfigKey
