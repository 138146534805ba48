package cdp.spark;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.Arrays;
import javax.security.sasl.AuthenticationException;
import org.apache.hive.service.auth.PasswdAuthenticationProvider;

/**
 * The privacy stage's Thrift server lets in only a connection whose password is its token
 * ({@code hive.server2.authentication=CUSTOM}, this class; cdp.spark_thrift).
 *
 * <p>That server has the keyed functions registered in its one shared session, so a connection
 * can compute the pseudonym of any value it guesses (an email, a phone number): a dictionary
 * attack on every pseudonym of the warehouse. Loopback alone lets in every local user. The
 * token is a fresh random secret per server start, in an owner-only file named by
 * {@code CDP_THRIFT_TOKEN_FILE} in the JVM's environment (read with the master key file's
 * checks: regular, owner-only, this user's, small), so only the OS user that runs the
 * server, the one that owns the key file, can connect. The comparison takes constant time;
 * no message holds the token or the password given.
 */
public final class ThriftToken implements PasswdAuthenticationProvider {
    public static final String ENV_TOKEN_FILE = "CDP_THRIFT_TOKEN_FILE";
    /** cdp.spark_thrift writes 32 random bytes, URL-safe base64: 43 characters. */
    static final int MIN_TOKEN_BYTES = 32;

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        String file = System.getenv(ENV_TOKEN_FILE);
        if (file == null || file.isBlank()) {
            throw new AuthenticationException(
                "cdp: the Thrift server has no token file (" + ENV_TOKEN_FILE + " is not set): "
                    + "start it with cdp spark-thrift");
        }
        byte[] expected;
        try {
            expected = Keys.readSecretFile(ENV_TOKEN_FILE, file);
        } catch (KeyConfigException e) {
            throw new AuthenticationException(e.getMessage());
        }
        byte[] given = password == null ? new byte[0] : password.getBytes(StandardCharsets.UTF_8);
        boolean accepted = expected.length >= MIN_TOKEN_BYTES && MessageDigest.isEqual(expected, given);
        Arrays.fill(expected, (byte) 0);
        Arrays.fill(given, (byte) 0);
        if (!accepted) {
            throw new AuthenticationException(
                "cdp: the Thrift server refused the connection: wrong or missing token (the password "
                    + "is the content of the server's token file, CDP_THRIFT_TOKEN_FILE)");
        }
    }
}
