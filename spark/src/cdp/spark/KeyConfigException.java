package cdp.spark;

/**
 * The master key is missing or unusable. The message says what to set, as
 * {@code cdp.keys.KeyConfigError} does in Python, and never contains the secret
 * or any part of it. Every message starts with {@code "cdp: "}, so the Python
 * side can find it in a Spark error.
 */
public final class KeyConfigException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    KeyConfigException(String message) {
        super("cdp: " + message, null, false, false);
    }
}
