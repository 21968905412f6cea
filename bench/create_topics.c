/*
 * create_topics: creates topics through the Kafka Admin API (CreateTopics)
 * with librdkafka, and waits until each one's metadata shows every
 * partition with a leader.
 *
 *   create_topics [--brokers N] BOOTSTRAP TOPIC:PARTITIONS:REPLICATION ...
 *
 * --brokers N first waits (up to 60 s) until Metadata lists N brokers and a
 * controller, each try on a new client: a cluster that is still electing
 * its controller answers Metadata with no brokers, and an admin client
 * that saw that answer waited out its whole timeout without retrying (seen
 * with librdkafka 2.12 against `seedlog cluster` just after start).
 * A topic that already exists is not an error. Exits non-zero on any other
 * error or if the leaders are not there within 30 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdkafka.h"

#define MAX_TOPICS 64

static int leaders_ready(rd_kafka_t *rk, const char *topic, int partitions) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int ready = 0, i;

        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1 && !md->topics[0].err &&
            md->topics[0].partition_cnt == partitions) {
                ready = 1;
                for (i = 0; i < partitions; i++)
                        if (md->topics[0].partitions[i].leader < 0 ||
                            md->topics[0].partitions[i].err)
                                ready = 0;
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return ready;
}

/* 1 when Metadata from a new client lists at least `want` brokers and a
 * controller. */
static int cluster_ready(const char *bootstrap, int want) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        const struct rd_kafka_metadata *md = NULL;
        int ready = 0;

        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr));
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk)
                return 0;
        if (rd_kafka_metadata(rk, 0, NULL, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                ready = md->broker_cnt >= want && rd_kafka_controllerid(rk, 0) >= 0;
                rd_kafka_metadata_destroy(md);
        }
        rd_kafka_destroy(rk);
        return ready;
}

int main(int argc, char **argv) {
        char errstr[512];
        char names[MAX_TOPICS][256];
        int parts[MAX_TOPICS];
        rd_kafka_NewTopic_t *newt[MAX_TOPICS];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        rd_kafka_event_t *ev;
        const rd_kafka_CreateTopics_result_t *res;
        const rd_kafka_topic_result_t **results;
        size_t n, cnt, i;
        int failed = 0, waited;

        if (argc >= 3 && !strcmp(argv[1], "--brokers")) {
                int want = atoi(argv[2]);
                argv += 2;
                argc -= 2;
                if (argc < 2) {
                        fprintf(stderr, "usage: create_topics [--brokers N] BOOTSTRAP TOPIC:PARTITIONS:RF ...\n");
                        return 2;
                }
                for (waited = 0; !cluster_ready(argv[1], want); waited++) {
                        if (waited >= 120) {
                                fprintf(stderr, "create_topics: Metadata did not list %d brokers "
                                                "and a controller within 60 s\n", want);
                                return 1;
                        }
                        usleep(500 * 1000);
                }
        }
        if (argc < 3 || argc - 2 > MAX_TOPICS) {
                fprintf(stderr, "usage: create_topics [--brokers N] BOOTSTRAP TOPIC:PARTITIONS:RF ...\n");
                return 2;
        }
        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "create_topics: %s\n", errstr);
                return 1;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "create_topics: %s\n", errstr);
                return 1;
        }
        n = (size_t)(argc - 2);
        for (i = 0; i < n; i++) {
                int rf = 1;
                char *spec = argv[i + 2], *c1 = strchr(spec, ':'), *c2;
                if (!c1) {
                        fprintf(stderr, "create_topics: expected TOPIC:PARTITIONS:RF, not %s\n",
                                spec);
                        return 2;
                }
                snprintf(names[i], sizeof(names[i]), "%.*s", (int)(c1 - spec), spec);
                parts[i] = atoi(c1 + 1);
                c2       = strchr(c1 + 1, ':');
                if (c2)
                        rf = atoi(c2 + 1);
                newt[i] = rd_kafka_NewTopic_new(names[i], parts[i], rf, errstr,
                                                sizeof(errstr));
                if (!newt[i]) {
                        fprintf(stderr, "create_topics: %s: %s\n", names[i], errstr);
                        return 1;
                }
        }
        q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, newt, n, NULL, q);
        ev = rd_kafka_queue_poll(q, 60 * 1000);
        if (!ev) {
                fprintf(stderr, "create_topics: no CreateTopics answer within 60 s\n");
                return 1;
        }
        if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "create_topics: %s\n", rd_kafka_event_error_string(ev));
                return 1;
        }
        res     = rd_kafka_event_CreateTopics_result(ev);
        results = rd_kafka_CreateTopics_result_topics(res, &cnt);
        for (i = 0; i < cnt; i++) {
                rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
                if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                        fprintf(stderr, "create_topics: %s: %s (%s)\n",
                                rd_kafka_topic_result_name(results[i]),
                                rd_kafka_err2str(err),
                                rd_kafka_topic_result_error_string(results[i])
                                    ? rd_kafka_topic_result_error_string(results[i])
                                    : "");
                        failed = 1;
                }
        }
        rd_kafka_event_destroy(ev);
        for (i = 0; i < n && !failed; i++) {
                for (waited = 0; !leaders_ready(rk, names[i], parts[i]); waited++) {
                        if (waited >= 60) {
                                fprintf(stderr, "create_topics: %s: no leader for every "
                                                "partition after 30 s\n", names[i]);
                                failed = 1;
                                break;
                        }
                        usleep(500 * 1000);
                }
        }
        for (i = 0; i < n; i++)
                rd_kafka_NewTopic_destroy(newt[i]);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return failed;
}
