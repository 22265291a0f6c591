
	 (92	compacted