package cdp.spark;

import java.nio.charset.StandardCharsets;
import javax.crypto.Mac;
import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.generic.GenericUDF;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.StringObjectInspector;
import org.apache.hadoop.io.Text;

/**
 * {@code cdp_pseudonym_<domain>(id_type, value)}: the keyed pseudonym of
 * {@code cdp.pseudonym.pseudonym(key, version, id_type, value)}, bit for bit:
 * {@code 'v' || version || '_' || lowercase hex HMAC-SHA-256(domain key,
 * utf8(id_type) || ':' || utf8(value))}; NULL if either argument is NULL.
 *
 * <p>Both arguments must be strings (or an untyped NULL): a number or a date
 * would be turned into text by Spark's rules, not DuckDB's. The domain key is
 * derived inside this JVM ({@link Keys}); it is held only by the per-thread
 * {@link Mac}s of this instance (transient: never serialized with a plan) and
 * nothing here prints it.
 */
public abstract class PseudonymUDF extends GenericUDF {
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private transient StringObjectInspector[] inputs;
    private transient ThreadLocal<Mac> macs;
    private transient byte[] prefix;

    /** The pseudonymisation domain (cdp.keys.DOMAINS). */
    protected abstract String domain();

    /** The SQL name the function is registered under. */
    protected String functionName() {
        return "cdp_pseudonym_" + domain();
    }

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        StringObjectInspector[] found = StringArguments.check(arguments, functionName(), "id_type, value");
        Keys.DomainKey key;
        try {
            key = Keys.domainKey(domain());
        } catch (KeyConfigException e) {
            throw new UDFArgumentException(e.getMessage());
        }
        inputs = found;
        prefix = ("v" + key.version + "_").getBytes(StandardCharsets.US_ASCII);
        macs = ThreadLocal.withInitial(key::newMac);
        return PrimitiveObjectInspectorFactory.writableStringObjectInspector;
    }

    private byte[] utf8(int i, Object value) {
        return inputs[i].getPrimitiveJavaObject(value).getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        Object idType = arguments[0].get();
        if (idType == null || inputs[0] == null) {
            return null;
        }
        Object value = arguments[1].get();
        if (value == null || inputs[1] == null) {
            return null;
        }
        byte[] typeBytes = utf8(0, idType);
        byte[] valueBytes = utf8(1, value);
        Mac mac = macs.get();
        mac.update(typeBytes);
        mac.update((byte) ':');
        mac.update(valueBytes);
        byte[] digest = mac.doFinal();
        byte[] out = new byte[prefix.length + 2 * digest.length];
        System.arraycopy(prefix, 0, out, 0, prefix.length);
        int at = prefix.length;
        for (byte b : digest) {
            out[at++] = (byte) HEX[(b >> 4) & 0xf];
            out[at++] = (byte) HEX[b & 0xf];
        }
        return new Text(out);
    }

    @Override
    public String getDisplayString(String[] children) {
        return getStandardDisplayString(functionName(), children);
    }

    @Override
    public String toString() {
        return functionName() + " (cdp keyed function; key redacted)";
    }

    /** cdp_pseudonym_identity: identifier pseudonyms (joins, identity resolution, vault map). */
    public static final class Identity extends PseudonymUDF {
        @Override
        protected String domain() {
            return "identity";
        }
    }

    /** cdp_pseudonym_person: the profile's person key. */
    public static final class Person extends PseudonymUDF {
        @Override
        protected String domain() {
            return "person";
        }
    }

    /** cdp_pseudonym_partner: outward disclosure to partners. */
    public static final class Partner extends PseudonymUDF {
        @Override
        protected String domain() {
            return "partner";
        }
    }
}
