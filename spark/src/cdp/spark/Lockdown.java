package cdp.spark;

import java.io.File;
import java.net.URI;
import java.util.Locale;
import java.util.Set;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.catalog.CatalogStorageFormat;
import org.apache.spark.sql.catalyst.catalog.CatalogTable;
import org.apache.spark.sql.catalyst.catalog.HiveTableRelation;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.plans.logical.CreateNamespace;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.CreateDataSourceTableCommand;
import org.apache.spark.sql.execution.command.CreateDatabaseCommand;
import org.apache.spark.sql.execution.command.CreateFunctionCommand;
import org.apache.spark.sql.execution.command.CreateTableCommand;
import org.apache.spark.sql.execution.command.CreateTableLikeCommand;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.execution.datasources.CreateTable;
import org.apache.spark.sql.execution.datasources.HadoopFsRelation;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import scala.Option;
import scala.Tuple2;
import scala.runtime.AbstractFunction1;
import scala.runtime.BoxedUnit;

/**
 * The Spark counterpart of DuckDB's {@code enable_external_access=false}: a session
 * extension ({@code spark.sql.extensions=cdp.spark.Lockdown}, a static setting that SQL
 * cannot change) whose check rule refuses, in every analysed plan and its subqueries,
 * whatever lets SQL read or write a file outside the session's warehouse, run a program
 * or call Java:
 *
 * <ul>
 *   <li>a file relation that is not a catalog table under {@code spark.sql.warehouse.dir}
 *       ({@code select * from text.`/path`}, a table or temporary view whose location or
 *       {@code path} option is elsewhere), any other data source relation (JDBC, ...),
 *       Data Source V2 and streaming relations, and a Hive table located elsewhere;
 *   <li>a {@code create table}, {@code create database} or {@code create table like} with
 *       a location outside the warehouse; {@code alter table ... set location},
 *       {@code alter table ... add partition} (a partition may name its own location),
 *       {@code alter database ... set location};
 *   <li>{@code load data}, {@code add jar|file|archive}, {@code insert overwrite
 *       directory}, {@code create temporary view ... using} (a data source over a path),
 *       {@code transform(...) using 'program'} (Hive script transformation: runs a shell
 *       command), {@code reflect}/{@code java_method}/{@code try_reflect} (call any static
 *       Java method);
 *   <li>{@code create function} of any class but this package's own keyed functions,
 *       with no resources ({@code using jar}), and SQL functions;
 *   <li>{@code set key=value} for any key but {@link #SETTABLE} (so SQL cannot turn
 *       {@code spark.sql.runSQLOnFiles} back on or switch a source to V2).
 * </ul>
 *
 * <p>Each refusal is a {@link LockdownException} whose message starts with {@code "cdp: "}.
 * {@code cdp.spark_udf.check_lockdown} proves the extension is active: Spark only warns if
 * it cannot load an extension, so its absence must be detected, not assumed.
 */
public final class Lockdown extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {

    /** Settings SQL may still change: dbt-spark's insert_overwrite strategy sets the first. */
    static final Set<String> SETTABLE = Set.of(
        "spark.sql.sources.partitionoverwritemode", "spark.sql.shuffle.partitions");

    private static final Set<String> REFUSED = Set.of(
        "LoadDataCommand", "AddJarsCommand", "AddFilesCommand", "AddArchivesCommand",
        "AlterTableSetLocationCommand", "AlterTableAddPartitionCommand",
        "AlterDatabaseSetLocationCommand", "SetNamespaceLocation",
        "InsertIntoDataSourceDirCommand", "InsertIntoHiveDirCommand", "InsertIntoDir",
        "CreateTempViewUsing", "ScriptTransformation", "HiveScriptTransformationExec",
        "CreateSQLFunctionCommand", "CreateUserDefinedFunctionCommand",
        "CallMethodViaReflection", "TryReflect");

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectCheckRule(new RuleBuilder());
        return BoxedUnit.UNIT;
    }

    /** The check rule of one session (its warehouse). */
    static final class RuleBuilder
        extends AbstractFunction1<SparkSession, scala.Function1<LogicalPlan, BoxedUnit>> {
        @Override
        public scala.Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
            return new Rule(session);
        }
    }

    static final class Rule extends AbstractFunction1<LogicalPlan, BoxedUnit> {
        private final SparkSession session;
        private transient String warehouse;

        Rule(SparkSession session) {
            this.session = session;
        }

        private String warehouse() {
            if (warehouse == null) {
                warehouse = folder(qualify(session.conf().get("spark.sql.warehouse.dir")));
            }
            return warehouse;
        }

        @Override
        public BoxedUnit apply(LogicalPlan plan) {
            plan.foreachWithSubqueries(new AbstractFunction1<LogicalPlan, BoxedUnit>() {
                @Override
                public BoxedUnit apply(LogicalPlan node) {
                    checkNode(node);
                    scala.collection.Iterator<Expression> expressions = node.expressions().iterator();
                    while (expressions.hasNext()) {
                        expressions.next().foreach(new AbstractFunction1<Expression, BoxedUnit>() {
                            @Override
                            public BoxedUnit apply(Expression expression) {
                                refuseByName(expression.getClass(), expression.nodeName());
                                return BoxedUnit.UNIT;
                            }
                        });
                    }
                    return BoxedUnit.UNIT;
                }
            });
            return BoxedUnit.UNIT;
        }

        private void checkNode(LogicalPlan node) {
            refuseByName(node.getClass(), node.nodeName());
            String name = node.getClass().getSimpleName();
            if (node instanceof LogicalRelation relation) {
                Option<CatalogTable> table = relation.catalogTable();
                if (!(relation.relation() instanceof HadoopFsRelation) || table.isEmpty()) {
                    throw new LockdownException(
                        "SQL may read only the catalog's tables, not files or other data sources ("
                            + relation.relation().getClass().getSimpleName() + ")");
                }
                requireInWarehouse(table.get().location(), "a table located");
            } else if (node instanceof HiveTableRelation relation) {
                requireInWarehouse(relation.tableMeta().location(), "a table located");
            } else if (name.startsWith("DataSourceV2") || name.startsWith("Streaming")) {
                throw new LockdownException("SQL may read only the catalog's tables (" + name + ")");
            } else if (node instanceof CreateTable create) {
                checkTable(create.tableDesc());
            } else if (node instanceof CreateDataSourceTableCommand create) {
                checkTable(create.table());
            } else if (node instanceof CreateTableCommand create) {
                checkTable(create.table());
            } else if (node instanceof CreateTableLikeCommand create) {
                checkStorage(create.fileFormat());
            } else if (node instanceof CreateDatabaseCommand create) {
                if (create.path().isDefined()) {
                    requireInWarehouse(qualify(create.path().get()), "a database located");
                }
            } else if (node instanceof CreateNamespace create) {
                Option<String> location = create.properties().get("location");
                if (location.isDefined()) {
                    requireInWarehouse(qualify(location.get()), "a database located");
                }
            } else if (node instanceof CreateFunctionCommand create) {
                if (!create.className().startsWith("cdp.spark.") || !create.resources().isEmpty()) {
                    throw new LockdownException(
                        "SQL may create only the project's keyed functions, not "
                            + create.className());
                }
            } else if (node instanceof SetCommand set) {
                Option<Tuple2<String, Option<String>>> kv = set.kv();
                if (kv.isDefined() && kv.get()._2().isDefined()
                    && !SETTABLE.contains(kv.get()._1().trim().toLowerCase(Locale.ROOT))) {
                    throw new LockdownException(
                        "SQL may not change the setting " + kv.get()._1().trim()
                            + " (the session is locked down)");
                }
            }
        }

        private void checkTable(CatalogTable table) {
            checkStorage(table.storage());
        }

        private void checkStorage(CatalogStorageFormat storage) {
            if (storage.locationUri().isDefined()) {
                requireInWarehouse(storage.locationUri().get(), "a table located");
            }
            scala.collection.Iterator<Tuple2<String, String>> options =
                storage.properties().iterator();
            while (options.hasNext()) {
                Tuple2<String, String> option = options.next();
                String key = option._1().toLowerCase(Locale.ROOT);
                if (key.equals("path") || key.equals("paths")) {
                    throw new LockdownException("SQL may not give a table a path option");
                }
            }
        }

        private void requireInWarehouse(URI location, String what) {
            if (!folder(location).startsWith(warehouse())) {
                throw new LockdownException(
                    "SQL may not use " + what + " outside the warehouse (" + location + ")");
            }
        }
    }

    static void refuseByName(Class<?> type, String nodeName) {
        String name = type.getSimpleName();
        if (REFUSED.contains(name) || REFUSED.contains(nodeName)) {
            throw new LockdownException(
                "SQL may not read files, run programs or call Java here (" + name + ")");
        }
    }

    /** {@code text} as a URI: a plain path becomes a {@code file:} URI. */
    static URI qualify(String text) {
        URI uri = URI.create(text.replace(" ", "%20"));
        return uri.getScheme() == null ? new File(text).getAbsoluteFile().toURI() : uri;
    }

    /** The normalised scheme and path of {@code uri}, ending with one {@code /}. */
    static String folder(URI uri) {
        URI normal = uri.getScheme() == null ? new File(uri.getPath()).toURI() : uri.normalize();
        String path = normal.getPath() == null ? "" : normal.getPath();
        if (path.contains("/../") || path.endsWith("/..")) {
            return "\u0000"; // not normalisable: under no warehouse
        }
        String scheme = normal.getScheme() == null ? "file" : normal.getScheme().toLowerCase(Locale.ROOT);
        return scheme + ":" + (path.endsWith("/") ? path : path + "/");
    }
}
