package cdp.spark;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The master key and the keys derived from it, inside the Spark JVM: a port of
 * {@code cdp.keys} (src/cdp/keys.py) for the parts the keyed functions need.
 *
 * <p>The secret is read only from the owner-only file named by
 * {@code CDP_MASTER_KEY_FILE} in this JVM's environment, with the checks and
 * the validation of {@code cdp.keys.load_master_key}; it never passes through
 * SQL, a Spark configuration or a function's arguments. {@code CDP_MASTER_KEY}
 * (the secret itself in the environment) is refused here: every process the
 * JVM starts (Python workers included) would inherit it. Each domain key is
 * HKDF-SHA256 (RFC 5869) of the secret with the salt and {@code info} of
 * {@code cdp.keys.derive}/{@code pseudonym_key}. The secret's bytes are
 * overwritten once the domain key is derived; no object here prints key
 * material, and no message quotes it.
 */
public final class Keys {
    public static final String ENV_KEY = "CDP_MASTER_KEY";
    public static final String ENV_KEY_FILE = "CDP_MASTER_KEY_FILE";
    public static final String ENV_KEY_VERSION = "CDP_KEY_VERSION";
    public static final String DEFAULT_KEY_VERSION = "1";
    public static final int MIN_SECRET_BYTES = 32;
    public static final int DERIVED_KEY_BYTES = 32;
    public static final int MAX_KEY_FILE_BYTES = 4096;

    /** The pseudonymisation domains (cdp.keys.DOMAINS). */
    public static final String[] DOMAINS = {"identity", "person", "partner"};

    private static final byte[] HKDF_SALT = "cdp/hkdf-salt/2024".getBytes(StandardCharsets.US_ASCII);
    private static final Pattern VERSION = Pattern.compile("[1-9][0-9]{0,3}");

    static final String HINT =
        "put a random secret of at least 32 bytes in an owner-only file (chmod 600) and set "
            + ENV_KEY_FILE + " to its path in the environment of the Spark JVM (on a cluster: of "
            + "every executor too, e.g. spark.executorEnv." + ENV_KEY_FILE + "); for a local demo "
            + "only, `python -m cdp.keys demo-key` writes such a file";

    // cdp.keys._PLACEHOLDER_WORDS, in the same order (the removal is sequential).
    private static final String[] PLACEHOLDER_WORDS = {
        "yourkeyhere", "yoursecrethere", "changeme", "changethis", "replaceme", "placeholder",
        "masterkey", "cdpmasterkey", "password", "passwd", "secret", "example", "default",
        "insecure", "dummy", "sample", "qwerty", "letmein", "admin", "test", "demo", "todo",
        "fixme", "your", "here", "key", "foo", "bar", "baz", "xxx", "123", "abc",
    };
    private static final int MIN_DISTINCT_CHARS = 8;
    private static final int MIN_MEANINGFUL_CHARS = 16;

    private Keys() {}

    // ------------------------------------------------------------------ version

    /** CDP_KEY_VERSION validated as cdp.keys.key_version does: 1-4 digits, no leading zero. */
    public static String keyVersion(Map<String, String> env) {
        String raw = env.get(ENV_KEY_VERSION);
        if (raw == null || pyStrip(raw).isEmpty()) {
            return DEFAULT_KEY_VERSION;
        }
        String value = pyStrip(raw);
        if (!VERSION.matcher(value).matches()) {
            throw new KeyConfigException(
                ENV_KEY_VERSION + " must be a key generation number of 1-4 digits without a "
                    + "leading zero (e.g. " + ENV_KEY_VERSION + "=1, the default, or 2 after a "
                    + "rotation)");
        }
        return value;
    }

    // ------------------------------------------------------------------ validation

    /**
     * Why {@code secret} looks like a placeholder or low-entropy value, or null:
     * cdp.keys._placeholder_reason, rule for rule, with the same words.
     */
    public static String placeholderReason(byte[] secret) {
        int n = secret.length;
        boolean[] seen = new boolean[256];
        int distinct = 0;
        for (byte b : secret) {
            int u = b & 0xff;
            if (!seen[u]) {
                seen[u] = true;
                distinct++;
            }
        }
        if (distinct == 1) {
            return "it is one character repeated";
        }
        if (distinct < MIN_DISTINCT_CHARS) {
            return "it uses only " + distinct + " distinct characters";
        }
        int maxPeriod = Math.min(16, n / 2);
        for (int period = 1; period <= maxPeriod; period++) {
            boolean repeats = true;
            for (int i = 0; i < n && repeats; i++) {
                repeats = secret[i] == secret[i % period];
            }
            if (repeats) {
                return "it is a short pattern repeated";
            }
        }
        if (n > 1) {
            int[] steps = new int[511];
            int most = 0;
            for (int i = 1; i < n; i++) {
                int step = (secret[i] & 0xff) - (secret[i - 1] & 0xff) + 255;
                most = Math.max(most, ++steps[step]);
            }
            if (most >= 0.6 * (n - 1)) {
                return "it is a simple sequence";
            }
        }
        // Python: secret.decode("utf-8", errors="replace").lower(), then re.sub(r"[\s._-]", "").
        String text = new String(secret, StandardCharsets.UTF_8).toLowerCase(Locale.ROOT);
        StringBuilder kept = new StringBuilder(text.length());
        text.codePoints()
            .filter(cp -> !(isPySpace(cp) || cp == '.' || cp == '_' || cp == '-'))
            .forEach(kept::appendCodePoint);
        String rest = kept.toString();
        for (String word : PLACEHOLDER_WORDS) {
            rest = rest.replace(word, "");
        }
        if (rest.codePointCount(0, rest.length()) < MIN_MEANINGFUL_CHARS) {
            return "it is mostly words from templates and documentation";
        }
        return null;
    }

    /** Python's str.isspace() for one code point (what \s matches in a str pattern). */
    static boolean isPySpace(int cp) {
        return cp == 0x85 || Character.isWhitespace(cp) || Character.isSpaceChar(cp);
    }

    /** cdp.keys.validate_secret: refuse a secret that is too short or looks like a placeholder. */
    public static void validateSecret(byte[] secret, String source) {
        if (secret.length == 0) {
            throw new KeyConfigException(source + " is empty: " + HINT);
        }
        if (secret.length < MIN_SECRET_BYTES) {
            throw new KeyConfigException(
                source + " holds " + secret.length + " bytes; at least " + MIN_SECRET_BYTES
                    + " bytes of random data are needed: " + HINT);
        }
        String reason = placeholderReason(secret);
        if (reason != null) {
            throw new KeyConfigException(
                source + " looks like a placeholder or low-entropy value (" + reason + "); "
                    + "replace it with a random secret: " + HINT);
        }
    }

    // ------------------------------------------------------------------ loading

    /** Python's str.strip() without arguments (Unicode whitespace), for the variables. */
    private static String pyStrip(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && isPySpace(s.codePointAt(start))) {
            start += Character.charCount(s.codePointAt(start));
        }
        while (end > start && isPySpace(s.codePointBefore(end))) {
            end -= Character.charCount(s.codePointBefore(end));
        }
        return s.substring(start, end);
    }

    /** Python's bytes.strip(): ASCII whitespace at both ends. */
    private static byte[] bytesStrip(byte[] data) {
        int start = 0;
        int end = data.length;
        while (start < end && isAsciiSpace(data[start])) {
            start++;
        }
        while (end > start && isAsciiSpace(data[end - 1])) {
            end--;
        }
        return Arrays.copyOfRange(data, start, end);
    }

    private static boolean isAsciiSpace(byte b) {
        return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == 0x0b || b == 0x0c;
    }

    private static Path expandUser(String text) {
        if (text.equals("~") || text.startsWith("~/")) {
            return Paths.get(System.getProperty("user.home") + text.substring(1));
        }
        return Paths.get(text);
    }

    private static int currentUid() {
        try {
            return (int) new com.sun.security.auth.module.UnixSystem().getUid();
        } catch (LinkageError e) {
            return -1; // not a Unix JVM: the owner check is skipped, as Python skips it
        }
    }

    /** cdp.keys._read_key_file: the file's checks, then its stripped content. */
    static byte[] readKeyFile(String pathText) {
        return readSecretFile(ENV_KEY_FILE, pathText);
    }

    /**
     * An owner-only file of at most MAX_KEY_FILE_BYTES holding one secret, named by the
     * environment variable {@code variable}: its stripped content. Messages name the variable
     * and the path, never the content.
     */
    static byte[] readSecretFile(String variable, String pathText) {
        Path path = expandUser(pathText);
        String where = variable + " (" + path + ")";
        Map<String, Object> attrs;
        try {
            attrs = Files.readAttributes(path, "unix:mode,uid,size,isRegularFile");
        } catch (NoSuchFileException e) {
            throw new KeyConfigException(
                where + " does not exist: create it with a random secret and chmod 600");
        } catch (IOException | UnsupportedOperationException e) {
            throw new KeyConfigException(where + " cannot be read (" + e.getClass().getSimpleName() + ")");
        }
        if (!Boolean.TRUE.equals(attrs.get("isRegularFile"))) {
            throw new KeyConfigException(where + " is not a regular file");
        }
        int mode = (Integer) attrs.get("mode");
        if ((mode & 0077) != 0) {
            throw new KeyConfigException(
                where + " is accessible to group or others (mode "
                    + String.format(Locale.ROOT, "%04o", mode & 07777)
                    + "); make it owner-only: chmod 600 '" + path + "'");
        }
        int uid = currentUid();
        if (uid >= 0 && ((Integer) attrs.get("uid")) != uid) {
            throw new KeyConfigException(
                where + " belongs to another user; use a key file owned by the user running the "
                    + "build (chmod 600)");
        }
        if ((Long) attrs.get("size") > MAX_KEY_FILE_BYTES) {
            throw new KeyConfigException(
                where + " is larger than " + MAX_KEY_FILE_BYTES + " bytes: it should hold one secret");
        }
        byte[] data;
        try {
            data = Files.readAllBytes(path);
        } catch (IOException e) {
            throw new KeyConfigException(where + " cannot be read (" + e.getClass().getSimpleName() + ")");
        }
        byte[] secret = bytesStrip(data);
        Arrays.fill(data, (byte) 0);
        return secret;
    }

    /**
     * The validated master secret from this JVM's environment. The caller
     * overwrites the returned array once it has derived what it needs.
     */
    static byte[] loadMasterSecret(Map<String, String> env) {
        String inline = env.get(ENV_KEY);
        if (inline != null && !pyStrip(inline).isEmpty()) {
            throw new KeyConfigException(
                ENV_KEY + " is set in the environment of the Spark JVM: on Spark the master key "
                    + "is read only from the file named by " + ENV_KEY_FILE + " (a variable would "
                    + "reach every process Spark starts, Python workers included); unset "
                    + ENV_KEY + " before Spark starts and " + HINT);
        }
        String fileName = env.get(ENV_KEY_FILE);
        if (fileName == null || pyStrip(fileName).isEmpty()) {
            throw new KeyConfigException(ENV_KEY_FILE + " is not set: " + HINT);
        }
        byte[] secret = readKeyFile(fileName);
        try {
            validateSecret(secret, ENV_KEY_FILE + " (" + expandUser(fileName) + ")");
        } catch (KeyConfigException e) {
            Arrays.fill(secret, (byte) 0);
            throw e;
        }
        return secret;
    }

    // ------------------------------------------------------------------ derivation

    /** HKDF-SHA256 (RFC 5869): extract with the fixed salt, expand with {@code info}. */
    static byte[] hkdf(byte[] secret, byte[] info, int length) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(HKDF_SALT, "HmacSHA256"));
            byte[] prk = mac.doFinal(secret);
            mac.init(new SecretKeySpec(prk, "HmacSHA256"));
            Arrays.fill(prk, (byte) 0);
            byte[] out = new byte[length];
            byte[] block = new byte[0];
            int done = 0;
            for (int counter = 1; done < length; counter++) {
                mac.update(block);
                mac.update(info);
                mac.update((byte) counter);
                Arrays.fill(block, (byte) 0);
                block = mac.doFinal();
                int take = Math.min(block.length, length - done);
                System.arraycopy(block, 0, out, done, take);
                done += take;
            }
            Arrays.fill(block, (byte) 0);
            return out;
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cdp: HmacSHA256 is not available in this JVM");
        }
    }

    /** cdp.keys.pseudonym_info. */
    static byte[] pseudonymInfo(String domain, String version) {
        if (!new HashSet<>(Arrays.asList(DOMAINS)).contains(domain)) {
            throw new IllegalArgumentException("cdp: unknown pseudonymisation domain " + domain);
        }
        return ("cdp:pseudonym:" + domain + ":v" + version).getBytes(StandardCharsets.US_ASCII);
    }

    /** A domain's HMAC key and the key version, from this JVM's environment. */
    static DomainKey domainKey(String domain) {
        Map<String, String> env = System.getenv();
        String version = keyVersion(env);
        byte[] secret = loadMasterSecret(env);
        byte[] key = hkdf(secret, pseudonymInfo(domain, version), DERIVED_KEY_BYTES);
        Arrays.fill(secret, (byte) 0);
        SecretKeySpec spec = new SecretKeySpec(key, "HmacSHA256");
        Arrays.fill(key, (byte) 0);
        return new DomainKey(spec, version);
    }

    /** The vault's AES-256-GCM key and nonce key for the configured version (cdp.vault). */
    static VaultKeys vaultKeys() {
        Map<String, String> env = System.getenv();
        String version = keyVersion(env);
        byte[] secret = loadMasterSecret(env);
        byte[] enc = hkdf(secret, ("cdp:vault:aes-256-gcm:v" + version).getBytes(StandardCharsets.US_ASCII), DERIVED_KEY_BYTES);
        byte[] nonce = hkdf(secret, ("cdp:vault:nonce:v" + version).getBytes(StandardCharsets.US_ASCII), DERIVED_KEY_BYTES);
        Arrays.fill(secret, (byte) 0);
        VaultKeys keys = new VaultKeys(
            new SecretKeySpec(enc, "AES"), new DomainKey(new SecretKeySpec(nonce, "HmacSHA256"), version), version);
        Arrays.fill(enc, (byte) 0);
        Arrays.fill(nonce, (byte) 0);
        return keys;
    }

    /** The vault's two keys; prints nothing of itself. */
    static final class VaultKeys {
        final SecretKeySpec encryption;
        final DomainKey nonce;
        final String version;

        private VaultKeys(SecretKeySpec encryption, DomainKey nonce, String version) {
            this.encryption = encryption;
            this.nonce = nonce;
            this.version = version;
        }

        @Override
        public String toString() {
            return "<cdp vault keys v" + version + ": redacted>";
        }
    }

    /** A domain key ready for HMAC; prints nothing of itself. */
    static final class DomainKey {
        private final SecretKeySpec spec;
        final String version;

        private DomainKey(SecretKeySpec spec, String version) {
            this.spec = spec;
            this.version = version;
        }

        /** A new Mac under this key (a Mac is not thread-safe: one per thread). */
        Mac newMac() {
            try {
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(spec);
                return mac;
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("cdp: HmacSHA256 is not available in this JVM");
            }
        }

        @Override
        public String toString() {
            return "<cdp domain key v" + version + ": redacted>";
        }
    }
}
