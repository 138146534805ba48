package cdp.spark;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.exec.UDFArgumentLengthException;
import org.apache.hadoop.hive.ql.metadata.HiveException;
import org.apache.hadoop.hive.ql.udf.generic.GenericUDF;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.PrimitiveObjectInspectorFactory;
import org.apache.hadoop.io.Text;

/**
 * {@code cdp_key_version()}: {@code 'v<CDP_KEY_VERSION>'} as the JVM's keyed
 * functions print it (the DuckDB plugin's temp macro of the same name). Not secret.
 */
public final class KeyVersionUDF extends GenericUDF {
    private transient Text label;

    @Override
    public ObjectInspector initialize(ObjectInspector[] arguments) throws UDFArgumentException {
        if (arguments.length != 0) {
            throw new UDFArgumentLengthException("cdp: cdp_key_version takes no arguments");
        }
        try {
            label = new Text("v" + Keys.keyVersion(System.getenv()));
        } catch (KeyConfigException e) {
            throw new UDFArgumentException(e.getMessage());
        }
        return PrimitiveObjectInspectorFactory.writableStringObjectInspector;
    }

    @Override
    public Object evaluate(DeferredObject[] arguments) throws HiveException {
        return new Text(label);
    }

    @Override
    public String getDisplayString(String[] children) {
        return "cdp_key_version()";
    }
}
