package dev.logwarden.shim;
import org.apache.lucene.analysis.TokenStream;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
@NamedComponent("unique")
public class Unique implements TokenFilterFactory {
    public TokenStream create(TokenStream in) { return in; }
}
