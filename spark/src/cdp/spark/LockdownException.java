package cdp.spark;

/**
 * A statement refused by {@link Lockdown}. The message starts with {@code "cdp: "}, so the
 * Python side can find it in a Spark error, and names what was refused, never a file's content.
 */
public final class LockdownException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    LockdownException(String message) {
        super("cdp: " + message, null, false, false);
    }
}
