/*
 * mock_broker: librdkafka's mock cluster (rd_kafka_mock_cluster_new) run as
 * a standalone broker for the benchmark. It keeps every record in memory
 * and writes nothing to disk: no durability, no fsync, no replication cost.
 *
 *   mock_broker [TOPIC:PARTITIONS ...]
 *
 * Creates the topics named (the mock answers CreateTopics with an error),
 * prints "BOOTSTRAP=host:port" on stdout and serves until SIGTERM/SIGINT.
 * The mock cluster listens on 127.0.0.1 on a port the kernel picks.
 *
 * The mock keeps only the last 5 MB (or 100,000 batches) of each partition,
 * a limit hard-coded in rdkafka_mock.c. A benchmark that reads back what it
 * wrote needs it all, so this program lifts the limit of the topics it
 * creates, through the mock's internal header (the same static build of
 * librdkafka, so the struct layout matches). Memory grows with the data.
 */
/* librdkafka's internal headers first: they set the feature macros. */
#include "rdkafka_int.h"
#include "rdkafka_mock.h"
#include "rdkafka_mock_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t run = 1;

static void stop(int sig) {
        (void)sig;
        run = 0;
}

int main(int argc, char **argv) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *mcluster;
        int i;

        /* The mock cluster needs a client instance to hang off; this one
         * never connects anywhere. */
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "mock_broker: rd_kafka_new: %s\n", errstr);
                return 1;
        }
        mcluster = rd_kafka_mock_cluster_new(rk, 1);
        if (!mcluster) {
                fprintf(stderr, "mock_broker: rd_kafka_mock_cluster_new failed\n");
                return 1;
        }
        for (i = 1; i < argc; i++) {
                char topic[256];
                const char *colon = strrchr(argv[i], ':');
                int partitions;
                rd_kafka_resp_err_t err;
                size_t len;

                if (!colon || colon == argv[i]) {
                        fprintf(stderr, "mock_broker: expected TOPIC:PARTITIONS, not %s\n",
                                argv[i]);
                        return 2;
                }
                len = (size_t)(colon - argv[i]);
                if (len >= sizeof(topic))
                        len = sizeof(topic) - 1;
                memcpy(topic, argv[i], len);
                topic[len]  = '\0';
                partitions  = atoi(colon + 1);
                err = rd_kafka_mock_topic_create(mcluster, topic, partitions, 1);
                if (err) {
                        fprintf(stderr, "mock_broker: creating %s: %s\n", topic,
                                rd_kafka_err2str(err));
                        return 1;
                }
                /* No client is connected yet: the mock thread does not
                 * touch these partitions while we change them. */
                {
                        rd_kafka_mock_topic_t *mtopic =
                            rd_kafka_mock_topic_find(mcluster, topic);
                        int p;
                        for (p = 0; mtopic && p < mtopic->partition_cnt; p++) {
                                mtopic->partitions[p].max_size = (size_t)1 << 40;
                                mtopic->partitions[p].max_cnt  = (size_t)1 << 40;
                        }
                }
        }
        signal(SIGTERM, stop);
        signal(SIGINT, stop);
        printf("BOOTSTRAP=%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
        fflush(stdout);
        while (run)
                usleep(100 * 1000);
        rd_kafka_mock_cluster_destroy(mcluster);
        rd_kafka_destroy(rk);
        return 0;
}
