package cdp.spark;

import org.apache.hadoop.hive.ql.exec.UDFArgumentException;
import org.apache.hadoop.hive.ql.exec.UDFArgumentLengthException;
import org.apache.hadoop.hive.ql.exec.UDFArgumentTypeException;
import org.apache.hadoop.hive.serde2.objectinspector.ObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector;
import org.apache.hadoop.hive.serde2.objectinspector.PrimitiveObjectInspector.PrimitiveCategory;
import org.apache.hadoop.hive.serde2.objectinspector.primitive.StringObjectInspector;

/** The argument check the keyed functions share: exactly their arguments, every one a string. */
final class StringArguments {
    private static final String[] COUNTS = {"no", "one", "two", "three", "four", "five"};

    private StringArguments() {}

    /**
     * One inspector per argument (null for an untyped NULL), or the error naming the function:
     * a number or a date would be turned into text by Spark's rules, not DuckDB's.
     */
    static StringObjectInspector[] check(ObjectInspector[] arguments, String name, String signature)
            throws UDFArgumentException {
        int count = signature.split(",").length;
        if (arguments.length != count) {
            throw new UDFArgumentLengthException(
                "cdp: " + name + " takes " + COUNTS[count] + " arguments (" + signature + "), not "
                    + arguments.length);
        }
        StringObjectInspector[] found = new StringObjectInspector[count];
        for (int i = 0; i < count; i++) {
            ObjectInspector oi = arguments[i];
            PrimitiveCategory category = oi instanceof PrimitiveObjectInspector
                ? ((PrimitiveObjectInspector) oi).getPrimitiveCategory() : null;
            if (category == PrimitiveCategory.STRING) {
                found[i] = (StringObjectInspector) oi;
            } else if (category != PrimitiveCategory.VOID) {
                throw new UDFArgumentTypeException(
                    i, "cdp: " + name + " takes strings: cast argument " + (i + 1) + " ("
                        + oi.getTypeName() + ") to string first");
            }
        }
        return found;
    }
}
