/* The xbitmap's head tracking in C: the C yardstick for fphlib's xbitmap tracking hooks.

   Included (gcc -include) into the tracked C reference buddy (ref_buddy_tracked.c of the
   benchmark suite) with TRK_ADD(p)=xbt_set(p); TRK_DEL(p)=xbt_clear(p); so that one bit per
   free block head is set when the block enters a free list and cleared when it leaves one,
   like fphlib's track="head" (fphlib/guest/free_page_tracking.py); or with
   TRK_ADD(p)=xbt_set_block(p,o); TRK_DEL(p)=xbt_clear_block(p,o); (o: the block's order, in
   scope where the reference calls its hooks) for one bit per free page, track="page".

   The same data structure and the same work as fphlib/guest/xbitmap_tree.py, itself after
   lib/xbitmap.c of "[PATCH v21 1/5] xbitmap: Introduce xbitmap"
   (https://lore.kernel.org/lkml/1515496262-7533-2-git-send-email-wei.w.wang@intel.com/)
   and lib/radix-tree.c of v4.15 (IDR flavour):
   - a leaf is 1024 bits (16 longs, a struct ida_bitmap) plus a count of its set bits; bit b
     lives in leaf b >> 10; a leaf exists iff it holds a set bit (freed when it empties);
   - leaves hang off a radix tree of 64-slot nodes (parent, offset, occupied-slot mask and
     the IDR_FREE tag as a "full" mask); the tree grows in height as the largest leaf index
     does and shrinks its root when the root only uses slot 0 (never the bottom node into the
     root);
   - leaves and nodes come from free-list pools (kmalloc of a slab object), as fphlib's
     pools of rows do; a leaf is freed only when empty, so the pool keeps it zero and the
     kzalloc only clears the free list's link (fphlib's _take_leaf);
   - the lookup remembers the last leaf found (fphlib's _lookup cache).
   At exit the tree is checked against itself (every leaf reachable from the root is
   non-empty and its count equals its bits; the leaves in the tree are the leaves taken from
   the pool): the program exits 3 when it is not. It prints the last repetition's leaf and
   node allocations as JSON on stderr; benchmarks/tracking_overhead.py compares them with
   fphlib's tree on the same trace, and the allocator's results (pfn checksum, nr_free) with
   the untracked run's.

   ref_buddy_tracked.c resets its own state with memset before each repetition; the memset
   wrapper at the end of this file resets the tree there too (outside the timed loop). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XBT_MAP_SHIFT 6
#define XBT_MAP_SIZE 64
#define XBT_LEAF_WORDS 16
#define XBT_LEAF_BITS 1024
#define XBT_MAX_LEAVES (1 << 14) /* 2**24 pages */
#define XBT_MAX_NODES (1 << 10)

typedef struct { int64_t slot[XBT_MAP_SIZE]; int64_t parent, offset; uint64_t occ, full; } xbt_node;
typedef struct { uint64_t w[XBT_LEAF_WORDS]; uint64_t count; } xbt_leaf;

static xbt_node xbt_nodes[XBT_MAX_NODES];
static xbt_leaf xbt_leaves[XBT_MAX_LEAVES];
static int64_t xbt_free_node, xbt_free_leaf; /* heads of the pools' free lists (via slot[0]/w[0]) */
static int64_t xbt_root = -1, xbt_height;
static int64_t xbt_cache_li = -1, xbt_cache_l, xbt_cache_n, xbt_cache_off;
static int64_t xbt_leaf_allocs, xbt_node_allocs;

static void xbt_reset(void) {
  for (int64_t i = 0; i < XBT_MAX_NODES; i++) xbt_nodes[i].slot[0] = i + 1 < XBT_MAX_NODES ? i + 1 : -1;
  memset(xbt_leaves, 0, sizeof xbt_leaves);
  for (int64_t i = 0; i < XBT_MAX_LEAVES; i++) xbt_leaves[i].w[0] = i + 1 < XBT_MAX_LEAVES ? i + 1 : -1;
  xbt_free_node = 0; xbt_free_leaf = 0; xbt_root = -1; xbt_height = 0; xbt_cache_li = -1;
  xbt_leaf_allocs = 0; xbt_node_allocs = 0;
}

static int64_t xbt_alloc_node(int64_t parent, int64_t offset) {
  int64_t n = xbt_free_node;
  if (n < 0) { fprintf(stderr, "xbitmap_hook: node pool exhausted\n"); exit(3); }
  xbt_free_node = xbt_nodes[n].slot[0];
  for (int i = 0; i < XBT_MAP_SIZE; i++) xbt_nodes[n].slot[i] = -1;
  xbt_nodes[n].parent = parent; xbt_nodes[n].offset = offset; xbt_nodes[n].occ = 0; xbt_nodes[n].full = 0;
  xbt_node_allocs++;
  return n;
}
static void xbt_release_node(int64_t n) { xbt_nodes[n].slot[0] = xbt_free_node; xbt_free_node = n; }
static int64_t xbt_take_leaf(void) {
  int64_t l = xbt_free_leaf;
  if (l < 0) { fprintf(stderr, "xbitmap_hook: leaf pool exhausted\n"); exit(3); }
  xbt_free_leaf = xbt_leaves[l].w[0];
  xbt_leaves[l].w[0] = 0; /* kzalloc: a free leaf is kept zero but for its link (as fphlib's) */
  xbt_leaf_allocs++;
  return l;
}
/* kfree: only an empty leaf is freed, so all it keeps is the free list's link */
static void xbt_release_leaf(int64_t l) { xbt_leaves[l].w[0] = xbt_free_leaf; xbt_free_leaf = l; }

static int64_t xbt_height_for(uint64_t li) { int64_t h = 0; while (li >> (XBT_MAP_SHIFT * h)) h++; return h; }
static int64_t xbt_digit(uint64_t li, int64_t level) { return (li >> (XBT_MAP_SHIFT * level)) & 63; }

/* __radix_tree_lookup: leaf or -1; *n, *off the bottom node and slot (n -1: no bottom node) */
static inline int64_t xbt_lookup(uint64_t li, int64_t *n_out, int64_t *off_out) {
  if (xbt_cache_li == (int64_t)li) { *n_out = xbt_cache_n; *off_out = xbt_cache_off; return xbt_cache_l; }
  *n_out = -1; *off_out = 0;
  if (xbt_root < 0) return -1;
  if (xbt_height == 0) return li == 0 ? xbt_root : -1;
  if (li >> (XBT_MAP_SHIFT * xbt_height)) return -1;
  int64_t n = xbt_root;
  for (int64_t level = xbt_height - 1;; level--) {
    int64_t off = xbt_digit(li, level), child = xbt_nodes[n].slot[off];
    if (level == 0) {
      *n_out = n; *off_out = off;
      if (child >= 0) { xbt_cache_li = li; xbt_cache_l = child; xbt_cache_n = n; xbt_cache_off = off; }
      return child;
    }
    if (child < 0) return -1;
    n = child;
  }
}

static void xbt_set_full_up(int64_t n, int64_t off) {
  while (n >= 0) {
    uint64_t full = xbt_nodes[n].full | (1ULL << off);
    xbt_nodes[n].full = full;
    if (full != ~0ULL) return;
    off = xbt_nodes[n].offset; n = xbt_nodes[n].parent;
  }
}
static void xbt_clear_full_up(int64_t n, int64_t off) {
  while (n >= 0) {
    uint64_t full = xbt_nodes[n].full, bit = 1ULL << off;
    if (!(full & bit)) return;
    xbt_nodes[n].full = full & ~bit;
    if (full != ~0ULL) return;
    off = xbt_nodes[n].offset; n = xbt_nodes[n].parent;
  }
}

/* radix_tree_extend */
static void xbt_extend(uint64_t li) {
  xbt_cache_li = -1;
  int64_t need = xbt_height_for(li), h = xbt_height, root = xbt_root;
  if (root < 0) { xbt_height = need; return; }
  while (h < need) {
    int64_t n = xbt_alloc_node(-1, 0);
    xbt_nodes[n].slot[0] = root; xbt_nodes[n].occ = 1;
    int full = h > 0 ? xbt_nodes[root].full == ~0ULL : xbt_leaves[root].count == XBT_LEAF_BITS;
    if (full) xbt_nodes[n].full = 1;
    if (h > 0) { xbt_nodes[root].parent = n; xbt_nodes[root].offset = 0; }
    root = n; h++;
  }
  xbt_root = root; xbt_height = h;
}

/* idr_get_free_cmn + radix_tree_iter_replace: a new empty leaf at li */
static int64_t xbt_insert_leaf(uint64_t li, int64_t bottom, int64_t slot, int64_t *n_out, int64_t *off_out) {
  int64_t l;
  if (bottom >= 0) {
    l = xbt_take_leaf();
    xbt_nodes[bottom].slot[slot] = l; xbt_nodes[bottom].occ |= 1ULL << slot;
    *n_out = bottom; *off_out = slot;
    return l;
  }
  xbt_extend(li);
  int64_t h = xbt_height;
  l = xbt_take_leaf();
  if (h == 0) { xbt_root = l; *n_out = -1; *off_out = 0; return l; }
  if (xbt_root < 0) xbt_root = xbt_alloc_node(-1, 0);
  int64_t n = xbt_root;
  for (int64_t level = h - 1; level > 0; level--) {
    int64_t off = xbt_digit(li, level), child = xbt_nodes[n].slot[off];
    if (child < 0) {
      child = xbt_alloc_node(n, off);
      xbt_nodes[n].slot[off] = child; xbt_nodes[n].occ |= 1ULL << off;
    }
    n = child;
  }
  int64_t off = xbt_digit(li, 0);
  xbt_nodes[n].slot[off] = l; xbt_nodes[n].occ |= 1ULL << off;
  *n_out = n; *off_out = off;
  return l;
}

/* radix_tree_shrink (never the bottom node into the root) */
static void xbt_shrink(void) {
  xbt_cache_li = -1;
  while (xbt_height > 1) {
    int64_t r = xbt_root;
    if (xbt_nodes[r].occ != 1) return;
    int64_t child = xbt_nodes[r].slot[0];
    xbt_nodes[child].parent = -1; xbt_nodes[child].offset = 0;
    xbt_root = child; xbt_height--;
    xbt_release_node(r);
  }
}

/* kfree(bitmap) + radix_tree_iter_delete (delete_node) */
static void xbt_delete_leaf(int64_t l, int64_t n, int64_t off) {
  xbt_cache_li = -1;
  xbt_release_leaf(l);
  if (n < 0) { xbt_root = -1; xbt_height = 0; return; }
  for (;;) {
    xbt_clear_full_up(n, off);
    xbt_nodes[n].slot[off] = -1;
    uint64_t occ = xbt_nodes[n].occ & ~(1ULL << off);
    xbt_nodes[n].occ = occ;
    if (occ) break;
    int64_t parent = xbt_nodes[n].parent, poff = xbt_nodes[n].offset;
    xbt_release_node(n);
    if (parent < 0) { xbt_root = -1; xbt_height = 0; return; }
    n = parent; off = poff;
  }
  if (xbt_nodes[n].parent < 0) xbt_shrink();
}

/* xb_set_bit */
__attribute__((unused)) static void xbt_set(uint64_t b) {
  uint64_t li = b >> 10;
  int64_t n, off, l = xbt_lookup(li, &n, &off);
  if (l < 0) l = xbt_insert_leaf(li, n, off, &n, &off);
  uint64_t m = 1ULL << (b & 63), old = xbt_leaves[l].w[(b >> 6) & 15];
  if (!(old & m)) {
    xbt_leaves[l].w[(b >> 6) & 15] = old | m;
    if (++xbt_leaves[l].count == XBT_LEAF_BITS) xbt_set_full_up(n, off);
  }
}

/* xb_clear_bit: a leaf left empty is freed, then empty nodes */
__attribute__((unused)) static void xbt_clear(uint64_t b) {
  int64_t n, off, l = xbt_lookup(b >> 10, &n, &off);
  if (l < 0) return;
  uint64_t m = 1ULL << (b & 63), old = xbt_leaves[l].w[(b >> 6) & 15];
  if (!(old & m)) return;
  if (xbt_leaves[l].count == XBT_LEAF_BITS) xbt_clear_full_up(n, off);
  xbt_leaves[l].w[(b >> 6) & 15] = old & ~m;
  if (--xbt_leaves[l].count == 0) xbt_delete_leaf(l, n, off);
}

static int64_t xbt_check_node(int64_t n, int64_t level, int64_t *leaves) {
  int64_t bad = 0;
  for (int i = 0; i < XBT_MAP_SIZE; i++) {
    int64_t c = xbt_nodes[n].slot[i];
    if ((c >= 0) != ((xbt_nodes[n].occ >> i) & 1)) bad++;
    if (c < 0) continue;
    if (level > 0) { bad += xbt_check_node(c, level - 1, leaves); continue; }
    uint64_t bits = 0;
    for (int w = 0; w < XBT_LEAF_WORDS; w++) bits += __builtin_popcountll(xbt_leaves[c].w[w]);
    if (bits == 0 || bits != xbt_leaves[c].count) bad++;
    (*leaves)++;
  }
  return bad;
}

static void xbt_check(void) {
  int64_t leaves = 0, bad = 0, taken = 0;
  for (int64_t l = xbt_free_leaf; l >= 0; l = xbt_leaves[l].w[0]) taken++;
  taken = XBT_MAX_LEAVES - taken;
  if (xbt_root >= 0 && xbt_height > 0) bad = xbt_check_node(xbt_root, xbt_height - 1, &leaves);
  else if (xbt_root >= 0) leaves = 1;
  /* read by benchmarks/tracking_overhead.py: the same work as fphlib's tree? */
  fprintf(stderr, "{\"leaf_allocs\": %lld, \"node_allocs\": %lld, \"leaves\": %lld}\n",
          (long long)xbt_leaf_allocs, (long long)xbt_node_allocs, (long long)leaves);
  if (bad || leaves != taken) {
    fprintf(stderr, "xbitmap_hook: tree inconsistent (%lld bad entries, %lld leaves in the tree, "
            "%lld taken)\n", (long long)bad, (long long)leaves, (long long)taken);
    _Exit(3);
  }
}

/* One bit per page (fphlib's track="page"): the block of 2**o pages at p, o <= 10, lies in
   one leaf; its bits are set (cleared) a word at a time, as fphlib's _leaf_block does. */
static uint64_t xbt_block_bits(uint64_t *w, uint64_t p, int o, int set) {
  uint64_t changed = 0;
  if (o < 6) {
    uint64_t m = ((1ULL << (1 << o)) - 1) << (p & 63), old = w[(p >> 6) & 15];
    uint64_t nw = set ? old | m : old & ~m;
    w[(p >> 6) & 15] = nw;
    return __builtin_popcountll(nw ^ old);
  }
  for (uint64_t i = (p >> 6) & 15, e = i + (1ULL << (o - 6)); i < e; i++) {
    changed += __builtin_popcountll(w[i] ^ (set ? ~0ULL : 0));
    w[i] = set ? ~0ULL : 0;
  }
  return changed;
}

__attribute__((unused)) static void xbt_set_block(uint64_t p, int o) {
  uint64_t li = p >> 10;
  int64_t n, off, l = xbt_lookup(li, &n, &off);
  if (l < 0) l = xbt_insert_leaf(li, n, off, &n, &off);
  int was_full = xbt_leaves[l].count == XBT_LEAF_BITS;
  xbt_leaves[l].count += xbt_block_bits(xbt_leaves[l].w, p, o, 1);
  if (!was_full && xbt_leaves[l].count == XBT_LEAF_BITS) xbt_set_full_up(n, off);
}

__attribute__((unused)) static void xbt_clear_block(uint64_t p, int o) {
  int64_t n, off, l = xbt_lookup(p >> 10, &n, &off);
  if (l < 0) return;
  if (xbt_leaves[l].count == XBT_LEAF_BITS) xbt_clear_full_up(n, off);
  xbt_leaves[l].count -= xbt_block_bits(xbt_leaves[l].w, p, o, 0);
  if (xbt_leaves[l].count == 0) xbt_delete_leaf(l, n, off);
}

/* Reset the tree wherever the reference resets its own state (before each repetition). */
static int xbt_checked;
static inline void *xbt_memset(void *d, int c, size_t n) {
  if (!xbt_checked) { xbt_checked = 1; atexit(xbt_check); }
  xbt_reset();
  return memset(d, c, n);
}
#define memset(d, c, n) xbt_memset(d, c, n)
