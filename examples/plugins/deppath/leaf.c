/* leaf.c - a plugin's own dependency, built twice (libdeppath_leaf_a.so, libdeppath_leaf_b.so),
 * each adding its own LEAF_ADD so a test sees which copy the child's loader found. */
long deppath_leaf_add(long x);
long deppath_leaf_add(long x) { return x + LEAF_ADD; }
