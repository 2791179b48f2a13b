/// `herald serve`'s command line, read from the setting declarations: `--flag value` or
/// `--flag=value` for every ``ConfigKey``.
public enum SettingFlags {
    public struct Unknown: Error, CustomStringConvertible {
        public var description: String
    }

    /// The settings given on a command line.
    public static func parse(_ arguments: [String]) throws(Unknown) -> [ConfigKey: String] {
        var flags: [ConfigKey: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.hasPrefix("--") else { throw Unknown(description: "unexpected argument '\(argument)'") }
            let body = argument.dropFirst(2)
            let name: Substring
            let value: String
            if let equals = body.firstIndex(of: "=") {
                name = body[..<equals]
                value = String(body[body.index(after: equals)...])
            } else {
                name = body
                guard index + 1 < arguments.count else { throw Unknown(description: "--\(name) needs a value") }
                index += 1
                value = arguments[index]
            }
            guard let key = ConfigKey(flag: String(name)) else {
                throw Unknown(description: "unknown option '--\(name)' (herald serve --help lists them)")
            }
            flags[key] = value
            index += 1
        }
        return flags
    }

    /// Every setting, for `--help`: the flag with its variables and default, then its help.
    public static var help: String {
        ConfigKey.allCases.map { key in
            let setting = key.setting
            let env = setting.environment.joined(separator: ", ")
            let def = setting.defaultValue.map { "default \($0)" } ?? "no default"
            return "--\(setting.flag) <value>   (\(env); \(def))\n    \(setting.help)"
        }.joined(separator: "\n")
    }
}
