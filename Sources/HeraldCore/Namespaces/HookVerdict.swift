/// What a backend hook answered, as the session rules need it.
public enum HookVerdict: Sendable, Equatable {
    case allowed
    /// The backend said no, with its message.
    case refused(String)
    /// The backend could not be asked (down, slow, an answer that is not the documented JSON).
    case unavailable(String)
}
