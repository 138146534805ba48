package cdp.spark;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.UDFType;
import org.apache.hadoop.hive.ql.udf.generic.GenericUDF;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.StringObjectInspector;
import org.apache.hadoop.io.BytesWritable;

/**
 * {@code cdp_vault_seal(table, owner, kind, value)}: {@code cdp.vault.VaultCipher.seal}
 * bit for bit, so {@code VaultCipher.unseal} opens what it writes.
 *
 * <p>{@code nonce (12) || AES-256-GCM(utf8(value), aad) || tag (16)} with
 * {@code aad = "cdp-vault/2" 0x00 table 0x00 owner 0x00 kind 0x00 "v" version}.
 * Identifiers ({@code vault_identifiers}) get the deterministic nonce: the first
 * 12 bytes of HMAC-SHA-256(nonce key, aad || 0x00 || value); names
 * ({@code vault_customer_names}) a random one, so the function is not
 * deterministic. A NULL argument gives NULL; another table fails the query.
 * Both keys are derived in the JVM ({@link Keys}: {@code cdp:vault:aes-256-gcm:v<version>},
 * {@code cdp:vault:nonce:v<version>}) and held only by this instance's transient fields.
 */
@UDFType(deterministic = false)
public final class VaultSealUDF extends GenericUDF {
    private static final byte[] AAD_LABEL = "cdp-vault/2".getBytes(StandardCharsets.US_ASCII);
    private static final int NONCE_BYTES = 12;
    private static final int TAG_BITS = 128;
    private static final SecureRandom RANDOM = new SecureRandom();

    private transient StringObjectInspector[] inputs;
    private transient SecretKeySpec encryptionKey;
    private transient ThreadLocal<Mac> nonceMacs;
    private transient byte[] versionLabel;

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        StringObjectInspector[] found = StringArguments.check(arguments, "cdp_vault_seal", "table, owner, kind, value");
        Keys.VaultKeys keys;
        try {
            keys = Keys.vaultKeys();
        } catch (KeyConfigException e) {
            throw new UDFArgumentException(e.getMessage());
        }
        inputs = found;
        encryptionKey = keys.encryption;
        versionLabel = ("v" + keys.version).getBytes(StandardCharsets.US_ASCII);
        nonceMacs = ThreadLocal.withInitial(keys.nonce::newMac);
        return PrimitiveObjectInspectorFactory.writableBinaryObjectInspector;
    }

    private String text(int i, Object value) {
        return inputs[i] == null || value == null ? null : inputs[i].getPrimitiveJavaObject(value);
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        String[] parts = new String[4];
        for (int i = 0; i < 4; i++) {
            parts[i] = text(i, arguments[i].get());
            if (parts[i] == null) {
                return null;
            }
        }
        boolean deterministic;
        if (parts[0].equals("vault_identifiers")) {
            deterministic = true;
        } else if (parts[0].equals("vault_customer_names")) {
            deterministic = false;
        } else {
            throw new HiveException("cdp: cdp_vault_seal: '" + parts[0] + "' is not a vault table");
        }
        for (int i = 0; i < 3; i++) {
            if (parts[i].indexOf('\0') >= 0) {
                throw new HiveException(
                    "cdp: a vault table, owner, kind or version must not contain a NUL character");
            }
        }
        ByteArrayOutputStream aad = new ByteArrayOutputStream();
        aad.writeBytes(AAD_LABEL);
        for (int i = 0; i < 3; i++) {
            aad.write(0);
            aad.writeBytes(parts[i].getBytes(StandardCharsets.UTF_8));
        }
        aad.write(0);
        aad.writeBytes(versionLabel);
        byte[] aadBytes = aad.toByteArray();
        byte[] plaintext = parts[3].getBytes(StandardCharsets.UTF_8);
        byte[] nonce;
        if (deterministic) {
            Mac mac = nonceMacs.get();
            mac.update(aadBytes);
            mac.update((byte) 0);
            mac.update(plaintext);
            nonce = Arrays.copyOf(mac.doFinal(), NONCE_BYTES);
        } else {
            nonce = new byte[NONCE_BYTES];
            RANDOM.nextBytes(nonce);
        }
        try {
            // A new Cipher per value: Java refuses a second GCM encryption with the same
            // key and nonce on one Cipher, and the deterministic nonce repeats by design.
            Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
            cipher.init(Cipher.ENCRYPT_MODE, encryptionKey, new GCMParameterSpec(TAG_BITS, nonce));
            cipher.updateAAD(aadBytes);
            byte[] sealed = cipher.doFinal(plaintext);
            byte[] out = new byte[NONCE_BYTES + sealed.length];
            System.arraycopy(nonce, 0, out, 0, NONCE_BYTES);
            System.arraycopy(sealed, 0, out, NONCE_BYTES, sealed.length);
            return new BytesWritable(out);
        } catch (GeneralSecurityException e) {
            throw new HiveException("cdp: cdp_vault_seal: AES-256-GCM failed (" + e.getClass().getSimpleName() + ")");
        }
    }

    @Override
    public String getDisplayString(String[] children) {
        return getStandardDisplayString("cdp_vault_seal", children);
    }

    @Override
    public String toString() {
        return "cdp_vault_seal (cdp keyed function; keys redacted)";
    }
}
