/* malloc_list: build a singly linked list of N nodes of varied small sizes, walk it, free it; ROUNDS times.
 * usage: malloc_list [N] [ROUNDS]   (default 200000 3). Prints a checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *next;
    uint64_t value;
    unsigned char payload[];
};

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000, rounds = argc > 2 ? atol(argv[2]) : 3;
    uint64_t x = 88172645463325252ULL, sum = 0;
    for (long r = 0; r < rounds; r++) {
        struct node *head = NULL;
        for (long i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t extra = x % 96;
            struct node *nd = malloc(sizeof *nd + extra);
            if (!nd) {
                perror("malloc");
                return 1;
            }
            nd->value = x;
            if (extra) nd->payload[extra - 1] = (unsigned char)x;
            nd->next = head;
            head = nd;
        }
        for (struct node *nd = head; nd; nd = nd->next) sum += nd->value >> 32;
        while (head) {
            struct node *next = head->next;
            free(head);
            head = next;
        }
    }
    printf("sum %016llx\n", (unsigned long long)sum);
    return 0;
}
